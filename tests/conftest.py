"""Shared fixtures. Tests run offline: any download attempt must fail fast."""

import atexit
import os
import pathlib
import shutil
import tempfile

import pytest

from kgpt2.keras_backend import set_default_backend

# Fix Keras's backend as `import kgpt2` does (JAX unless KERAS_BACKEND says
# otherwise) before any test module imports Keras: test files then import in
# the usual order, Keras before or after kgpt2.
set_default_backend()

# Route every HTTP(S) request to a closed local port: a download attempt
# fails at once with a connection error instead of hanging, on any machine.
for variable in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
    os.environ[variable] = "http://127.0.0.1:9"
os.environ.pop("NO_PROXY", None)
os.environ.pop("no_proxy", None)

# One JAX compilation cache for the whole session, this process and the
# processes it starts (they inherit the environment): a program that one
# test compiled is read back from disk by the next model or process that
# compiles the same program. Small programs count too (the default skips
# those under a second), and the folder goes away with the session, so each
# run compiles from scratch once and leaves nothing in ~/.cache.
# Under pytest-xdist the workers share the controller's folder (they inherit
# its environment); the controller removes it.
if "PYTEST_XDIST_WORKER" in os.environ and "KGPT2_TESTS_COMPILATION_CACHE" in os.environ:
    _COMPILATION_CACHE = os.environ["KGPT2_TESTS_COMPILATION_CACHE"]
else:
    _COMPILATION_CACHE = tempfile.mkdtemp(prefix="kgpt2-tests-jax-cache-")
    atexit.register(shutil.rmtree, _COMPILATION_CACHE, ignore_errors=True)
    os.environ["KGPT2_TESTS_COMPILATION_CACHE"] = _COMPILATION_CACHE
os.environ["KGPT2_COMPILATION_CACHE"] = _COMPILATION_CACHE
os.environ["JAX_COMPILATION_CACHE_DIR"] = _COMPILATION_CACHE
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"

FIXTURES = pathlib.Path(__file__).parent / "fixtures"

# The files that take longest (child processes, notebooks, training), longest
# first, measured with `-p cpu_times`. Under `-n 2` each worker takes whole
# files in collection order (`--dist loadfile --no-loadscope-reorder` in
# pyproject.toml), so starting with these keeps both workers busy to the end
# instead of leaving one to run a two-minute file alone.
LONGEST_FILES = (
    "test_docstring_examples.py",
    "test_docs.py",
    "test_processes.py",
    "test_notebooks.py",
    "test_bench_backends.py",
    "test_distribution.py",
    "test_tensorflow_backend.py",
    "test_cli_output.py",
    "test_samplers.py",
    "test_generation.py",
    "test_training_crash.py",
    "test_bench.py",
    "test_training_finetune.py",
    "test_runs_safety.py",
)


def pytest_collection_modifyitems(config, items):
    """Deselect what this run must not run, and run the longest files first.

    `tensorflow_only` tests run only where Keras runs on TensorFlow
    (test_tensorflow_backend.py runs them in a TensorFlow process).
    Speed measurements are scripts in benchmarks/, not tests.
    """
    tensorflow = os.environ.get("KERAS_BACKEND", "jax") == "tensorflow"

    def wanted(item):
        return tensorflow or not item.get_closest_marker("tensorflow_only")

    deselected = [item for item in items if not wanted(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if wanted(item)]
    items.sort(key=_file_rank)  # stable: a file's own order stays


def _file_rank(item):
    name = item.path.name
    return LONGEST_FILES.index(name) if name in LONGEST_FILES else len(LONGEST_FILES)


@pytest.fixture(scope="session")
def fixtures_dir():
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_lm():
    """A session-wide `gpt2_tiny_random` (read-only: don't train it)."""
    import kgpt2

    return kgpt2.load("gpt2_tiny_random", sequence_length=64)


@pytest.fixture()
def fresh_tiny_lm():
    """A new `gpt2_tiny_random` that a test may train or recompile."""
    import kgpt2

    return kgpt2.load("gpt2_tiny_random", sequence_length=64)
