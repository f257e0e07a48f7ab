"""An ASGI middleware that refuses request bodies over a size limit (HTTP 413).

It counts the bytes as they arrive, so a body without `Content-Length`
(chunked) is cut off too, and the app never holds more than the limit.

Example:
```python
from fastapi import FastAPI
from kgpt2.serving.body_limit import BodyLimit

app = FastAPI()
app.add_middleware(BodyLimit, max_bytes=1 << 20)
```
"""

from kgpt2.serving.api_errors import ApiError


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Answer 413 to any HTTP request whose body exceeds `max_bytes`."""

    def __init__(self, app, max_bytes):
        self.app = app
        self.max_bytes = int(max_bytes)

    def _error(self):
        return ApiError(
            413, f"The request body is larger than {self.max_bytes} bytes.",
            code="request_too_large",
        ).response()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._error()(scope, receive, send)
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._error()(scope, receive, send)
