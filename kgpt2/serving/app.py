"""`create_app`: the FastAPI app that serves a loaded model, OpenAI-style.

Routes: `GET /` (the playground page), `GET /health`, `GET /v1/models`,
`POST /v1/completions` and `POST /v1/chat/completions` (plain or streamed;
chat needs a chat template). With an API key, the `/v1/`
routes need `Authorization: Bearer <key>` (compared in constant time).
Every error is OpenAI's JSON envelope naming the field at fault.

Example:
```python
import kgpt2
from fastapi.testclient import TestClient
from kgpt2.serving import create_app

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
with TestClient(create_app(lm, "gpt2_tiny_random")) as client:
    answer = client.post("/v1/completions", json={
        "model": "gpt2_tiny_random", "prompt": "Hello", "max_tokens": 8,
        "temperature": 0})
    print(answer.json()["choices"][0]["finish_reason"])  # length
```
"""

import contextlib
import hmac
import importlib.resources
import time

from fastapi import Depends
from fastapi import FastAPI
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.responses import StreamingResponse
from starlette.exceptions import HTTPException

from kgpt2.generation.batching_engine import DEFAULT_MAX_BATCH_SIZE
from kgpt2.generation.batching_engine import BatchingEngine
from kgpt2.serving.api_errors import ApiError
from kgpt2.serving.api_errors import validation_error
from kgpt2.serving.body_limit import BodyLimit
from kgpt2.serving.chat import ChatService
from kgpt2.serving.chat_template import ChatTemplate
from kgpt2.serving.completions import CompletionService
from kgpt2.serving.schemas import ChatCompletionRequest
from kgpt2.serving.schemas import CompletionRequest

DEFAULT_MAX_BODY_BYTES = 1 << 20


def playground_html():
    """The playground page (plain HTML and JavaScript, no build step)."""
    return (
        importlib.resources.files("kgpt2")
        .joinpath("assets/playground/index.html")
        .read_text(encoding="utf-8")
    )


def _api_key_check(api_key):
    expected = api_key.encode("utf-8") if api_key else None

    def check(request: Request):
        if expected is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode("utf-8"), expected
        ):
            raise ApiError(401, "Missing or incorrect API key: send the header "
                           "'Authorization: Bearer <key>'.", code="invalid_api_key")

    return check


def _event_stream(events):
    return StreamingResponse(
        events, media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _add_error_handlers(app):
    @app.exception_handler(ApiError)
    async def api_error(request, error):
        return error.response()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, error):
        return validation_error(error.errors()).response()

    @app.exception_handler(HTTPException)
    async def http_error(request, error):
        return ApiError(error.status_code, str(error.detail)).response()


def create_app(lm, model_name, max_batch_size=DEFAULT_MAX_BATCH_SIZE, max_queue=64, api_key=None,
               max_body_bytes=DEFAULT_MAX_BODY_BYTES, context_length=None,
               drain_seconds=5.0, engine=None, prepend_bos=None, chat_template=None):
    """Return the ASGI app serving `lm` as `model_name`.

    Args:
        lm: a `GPT2CausalLM` with its preprocessor.
        model_name: what `/v1/models` lists and requests name.
        max_batch_size: the most rows decoded together (continuous batching;
            each step runs only as many as the busy requests need).
        max_queue: requests that may wait for rows; beyond it, HTTP 429.
        api_key: if set, `/v1/` routes need `Authorization: Bearer <key>`.
        max_body_bytes: larger request bodies get HTTP 413.
        context_length: tokens per row, prompt included (default: the
            preprocessor's `sequence_length`).
        drain_seconds: at shutdown, how long busy requests may finish
            before they are cancelled.
        engine: a `BatchingEngine` to use instead of making one.
        prepend_bos: start every completion prompt with `<|endoftext|>`
            (and count it in `usage.prompt_tokens`). None follows the
            model's preprocessor: yes for kgpt2's presets and fine-tunes,
            which train that way; False conditions on the prompt alone, as
            Hugging Face and OpenAI do.
        chat_template: the Jinja chat template (text or `ChatTemplate`) for
            `/v1/chat/completions`; None answers it with a 400 that says
            how to give one.
    """
    engine = engine or BatchingEngine(
        lm, max_batch_size=max_batch_size, max_queue=max_queue,
        context_length=context_length,
    )
    service = CompletionService(engine, model_name, prepend_bos=prepend_bos)
    if isinstance(chat_template, str):
        chat_template = ChatTemplate(chat_template)
    chat = ChatService(service, chat_template)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        engine.close(drain_seconds=drain_seconds)

    app = FastAPI(title="kgpt2", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.engine = engine
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    _add_error_handlers(app)
    authorized = Depends(_api_key_check(api_key))
    started = int(time.time())

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def playground():
        return playground_html()

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_name, "engine": engine.stats()}

    @app.get("/v1/models", dependencies=[authorized])
    async def models():
        return {"object": "list", "data": [
            {"id": model_name, "object": "model", "created": started, "owned_by": "kgpt2"}
        ]}

    @app.post("/v1/completions", dependencies=[authorized])
    async def completions(request: CompletionRequest):
        if request.stream:
            return _event_stream(await service.stream(request))
        return (await service.complete(request)).model_dump(exclude_none=True)

    @app.post("/v1/chat/completions", dependencies=[authorized])
    async def chat_completions(request: ChatCompletionRequest):
        if request.stream:
            return _event_stream(chat.stream(request))
        return (await chat.complete(request)).model_dump(exclude_none=True)

    return app
