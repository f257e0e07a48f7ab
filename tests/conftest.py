"""Shared fixtures. Tests run offline: any download attempt must fail fast."""

import os
import pathlib

# Route every HTTP(S) request to a closed local port: a download attempt
# fails at once with a connection error instead of hanging, on any machine.
for variable in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
    os.environ[variable] = "http://127.0.0.1:9"
os.environ.pop("NO_PROXY", None)
os.environ.pop("no_proxy", None)

import pytest  # noqa: E402

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


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
