"""`serve`: load a model and run the API with uvicorn until stopped.

The host and port are checked, and the socket bound, before the model
loads, so a bad `--port` or a port in use is one line, at once. SIGTERM or
Ctrl+C stops taking connections and lets busy requests finish for
`drain_seconds`; then each unfinished choice ends, cut short, with
`finish_reason: "length"` (a streamed one with its final chunk and
`data: [DONE]`), and `serve` returns.

Example:
```python
from kgpt2.serving import serve

serve("gpt2_tiny_random", port=8000)  # blocks; see http://127.0.0.1:8000/
```
"""

import asyncio
import errno
import logging
import os
import pathlib
import signal
import socket
import threading

import kgpt2
from kgpt2.checks import check_integer
from kgpt2.checks import shown_name
from kgpt2.errors import Error
from kgpt2.errors import InputError
from kgpt2.generation.batching_engine import DEFAULT_MAX_BATCH_SIZE
from kgpt2.serving.app import DEFAULT_MAX_BODY_BYTES
from kgpt2.serving.app import create_app
from kgpt2.serving.chat_template import ChatTemplate
from kgpt2.serving.chat_template import folder_chat_template
from kgpt2.serving.chat_template import read_chat_template

API_KEY_VARIABLE = "KGPT2_API_KEY"
# After the drain, cut streams still need to send their last chunks.
SHUTDOWN_MARGIN_SECONDS = 10


class ListenError(Error, OSError):
    """The server cannot listen on the host and port it was given."""

logger = logging.getLogger("kgpt2")


def model_name(preset):
    """What `/v1/models` calls `preset`: a folder's name, else the preset name."""
    path = pathlib.Path(str(preset)).expanduser()
    return path.resolve().name if path.is_dir() else str(preset)


def listening_socket(host, port):
    """A TCP socket bound to `host:port`, or an error naming them and what to do.

    Example:
    ```python
    from kgpt2.serving.server import listening_socket

    with listening_socket("127.0.0.1", 0) as sock:
        print(sock.getsockname()[1] > 0)  # True
    ```
    """
    check_integer(None, "port", port, minimum=0, maximum=65535)
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as error:
        cause = getattr(error, "strerror", None) or error
        raise InputError(
            f"{shown_name('host')} {host!r} is not an address or name of this "
            f"machine ({cause}); use 127.0.0.1 (this machine only) or 0.0.0.0 (every network)."
        ) from None
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        sock.close()
        reason = "is in use" if error.errno == errno.EADDRINUSE else f"cannot be used ({error.strerror or error})"
        raise ListenError(
            f"{host}:{port} {reason}; pick another {shown_name('port')} "
            "(0 picks a free one)."
        ) from None
    return sock


def serve(preset, host="127.0.0.1", port=8000, max_batch_size=DEFAULT_MAX_BATCH_SIZE, max_queue=64,
          api_key=None, context_length=None, max_body_bytes=None, drain_seconds=5.0,
          log_level="warning", ready=None, prepend_bos=None, chat_template=None):
    """Load `preset` and serve it until SIGTERM / Ctrl+C.

    Args:
        preset: a preset name, preset folder, or `kgpt2 finetune` run folder.
        host, port: where to listen (loopback by default; `0.0.0.0` exposes
            it to the network: set an API key then).
        max_batch_size, max_queue: see `create_app`. Before it listens, the
            server compiles its decode step for every row count (see
            `BatchingEngine.warm_up`).
        api_key: required as `Authorization: Bearer <key>`; defaults to the
            `KGPT2_API_KEY` environment variable, if set.
        context_length: tokens per request, prompt included (default: the
            model's 1024 positions).
        max_body_bytes: request body limit (default 1 MiB).
        drain_seconds: how long busy requests may finish at shutdown.
        log_level: uvicorn's log level.
        ready: called with the port once the server listens (for tests and
            `--port 0`).
        prepend_bos: the token convention of `/v1/completions`. True puts
            `<|endoftext|>` before every prompt (GPT-2 saw it between its
            training documents, and kgpt2 fine-tunes with it); False sends
            the prompt's own tokens only, as Hugging Face's `transformers
            serve` and OpenAI do. None (default) follows the model's
            preprocessor: True for kgpt2 presets, fine-tunes and imported
            folders alike. `usage.prompt_tokens` counts the tokens the
            model saw, once per prompt whatever `n` is.
        chat_template: a Jinja chat template file for
            `/v1/chat/completions`; default the `chat_template` of a Hugging
            Face folder given as `preset` (its `chat_template.jinja` or
            `tokenizer_config.json`). Without either, chat requests get a
            400 saying how to give one.
    """
    import uvicorn

    # Before loading the model: a bad file should cost no wait.
    if chat_template is not None:
        template = ChatTemplate(read_chat_template(chat_template))
    else:
        source = folder_chat_template(preset)
        template = ChatTemplate(source) if source else None
    api_key = api_key or os.environ.get(API_KEY_VARIABLE) or None
    # Before the model loads: a mistake here costs no wait.
    sock = listening_socket(host, port)
    try:
        lm = kgpt2.load(preset, sequence_length=context_length)
        app = create_app(
            lm, model_name(preset), max_batch_size=max_batch_size, max_queue=max_queue,
            api_key=api_key, context_length=context_length or lm.backbone.max_sequence_length,
            max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES,
            drain_seconds=drain_seconds, prepend_bos=prepend_bos, chat_template=template,
        )
        # Before listening: no request should wait for a compile.
        seconds = app.state.engine.warm_up()
        logger.info("kgpt2 serve: decode steps compiled in %.1f s", seconds)
        config = uvicorn.Config(
            app, host=host, port=port, log_level=log_level,
            timeout_graceful_shutdown=int(drain_seconds) + SHUTDOWN_MARGIN_SECONDS,
        )
        server = uvicorn.Server(config)
        _end_streams_first(server, app.state.engine, drain_seconds)
        if ready is not None:
            original = server.startup

            async def startup(sockets=None):
                await original(sockets=sockets)
                ready(sock.getsockname()[1])

            server.startup = startup
        _run_until_stopped(server, sock)
    finally:
        sock.close()


def _end_streams_first(server, engine, drain_seconds):
    """At shutdown, close the engine before uvicorn waits for connections.

    uvicorn waits for open connections and then cancels them, which would
    end a live stream with no final event (and log a traceback). Closing
    the engine first lets busy rows finish for `drain_seconds`, then ends
    the others with `finish_reason: "length"`, so every stream sends its
    last chunk and `[DONE]` and its connection closes on its own.
    """
    original = server.shutdown

    async def shutdown(sockets=None):
        closing = asyncio.get_running_loop().run_in_executor(None, engine.close, drain_seconds)
        await original(sockets=sockets)
        await closing

    server.shutdown = shutdown


def _run_until_stopped(server, sock):
    """Run uvicorn; a SIGTERM ends it with a clean return (exit status 0).

    uvicorn shuts down gracefully on SIGTERM, then raises the signal again
    for the handler that was there before; a no-op handler here makes that
    a normal return instead of death by signal.
    """
    if threading.current_thread() is not threading.main_thread():
        server.run(sockets=[sock])
        return
    previous = signal.signal(signal.SIGTERM, lambda number, frame: None)
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
    logger.info("kgpt2 serve: stopped")
