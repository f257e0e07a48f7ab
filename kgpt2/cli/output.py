"""What a `kgpt2` command prints: kgpt2's own lines, not its libraries' chatter.

TensorFlow, absl and XLA write start-up lines straight to file descriptor 2
from C++ (`E0000 ... failed call to cuInit`, `cudart_stub.cc`, oneDNN notes),
some before any log level can be set. By default a command sends descriptor
2 to /dev/null for its duration while Python's `sys.stderr` keeps writing to
the terminal, so kgpt2's messages, warnings and errors still show. The
environment variables below quiet what honours them, before TensorFlow or
JAX is imported.
"""

import contextlib
import logging
import os
import sys
import warnings

from rich.console import Console
from rich.logging import RichHandler

LOGGER_NAME = "kgpt2"

# Set before TensorFlow/JAX load (unless the user set them): fewer C++ lines.
QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "GRPC_VERBOSITY": "ERROR",
    "GLOG_minloglevel": "3",
}


def package_version():
    """The installed kgpt2 version, without importing TensorFlow.

    Example:
    ```python
    from kgpt2.cli.output import package_version

    # The installed version, e.g. 0.1.0:
    print(package_version())
    ```
    """
    from importlib import metadata

    try:
        return metadata.version("kgpt2")
    except metadata.PackageNotFoundError:
        return "(not installed; running from a source tree)"


def rich_handler():
    """A `rich` logging handler on stderr that prints messages plainly.

    Warnings and errors get a `warning:`/`error:` prefix; INFO lines are the
    message alone. Lines are not wrapped when stderr is not a terminal.

    Example:
    ```python
    import logging
    from kgpt2.cli.output import rich_handler

    logging.getLogger("kgpt2").addHandler(rich_handler())
    ```
    """
    console = Console(stderr=True, soft_wrap=True, highlight=False)
    handler = PlainRichHandler(
        console=console, show_time=False, show_level=False, show_path=False,
        markup=False, rich_tracebacks=False, highlighter=None,
    )
    handler.setFormatter(_PrefixFormatter())
    return handler


class PlainRichHandler(RichHandler):
    """`RichHandler` without its column layout, which pads every line to the
    console width and wraps long ones (breaking paths the user copies)."""

    def render(self, *, record, traceback, message_renderable):
        return message_renderable


class _PrefixFormatter(logging.Formatter):
    def format(self, record):
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


@contextlib.contextmanager
def _native_stderr_hidden():
    """Send descriptor 2 to /dev/null; keep `sys.stderr` on the real one."""
    try:
        sys.stderr.flush()
        original = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    python_stderr = sys.stderr
    replaced = False
    try:
        uses_fd2 = python_stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        uses_fd2 = False  # already captured elsewhere (e.g. by pytest)
    if uses_fd2:
        sys.stderr = os.fdopen(os.dup(original), "w", encoding=python_stderr.encoding,
                               errors="backslashreplace", buffering=1)
        replaced = True
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        if replaced:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(original, 2)
        os.close(original)


@contextlib.contextmanager
def command_output(verbose=False, quiet=False):
    """Set up a command's output: logging, library noise, warnings.

    Args:
        verbose: show TensorFlow/absl/XLA lines and library warnings too.
        quiet: show only warnings and errors from kgpt2's logger (results
            printed to stdout are unaffected).

    Example:
    ```python
    import logging
    from kgpt2.cli.output import command_output

    with command_output(quiet=False):
        logging.getLogger("kgpt2").info("shown on stderr")
    ```
    """
    if not verbose:
        for key, value in QUIET_ENVIRONMENT.items():
            os.environ.setdefault(key, value)
    logger = logging.getLogger(LOGGER_NAME)
    handler = rich_handler()
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    with contextlib.ExitStack() as stack:
        if not verbose:
            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore")
            stack.enter_context(_native_stderr_hidden())
            _quiet_python_loggers()
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(previous_level)


def _quiet_python_loggers():
    """Python-side loggers of the libraries: errors only."""
    for name in ("tensorflow", "absl", "jax", "jax._src.xla_bridge", "keras", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


def discard_stdout():
    """Send what is left for stdout to /dev/null, after its reader has gone.

    Without it, flushing stdout at exit raises `BrokenPipeError` once more.

    Example:
    ```python
    import contextlib, io
    from kgpt2.cli.output import discard_stdout

    with contextlib.redirect_stdout(io.StringIO()):
        discard_stdout()  # a stdout in memory has no descriptor: left as is
    ```
    """
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (captured): nothing will be flushed to a pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)
