"""An ASGI middleware that refuses request bodies over a size limit (HTTP 413).

It reads the body before the app does, counting the bytes as they arrive,
so a body without `Content-Length` (chunked) is refused too, with a 413 and
not with the app's "error parsing the body", and the app never holds more
than the limit.

Example:
```python
from fastapi import FastAPI
from kgpt2.serving.body_limit import BodyLimit

app = FastAPI()
app.add_middleware(BodyLimit, max_bytes=1 << 20)
```
"""

from kgpt2.serving.api_errors import ApiError


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
        # Read the whole body here: an error raised inside the app's own
        # reading would reach the client as the app's 400, not as a 413.
        chunks, received = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > self.max_bytes:
                return await self._error()(scope, receive, send)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            # The body once, then the server's own messages (a disconnect).
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
