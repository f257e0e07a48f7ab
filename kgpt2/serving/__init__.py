"""Serving: an OpenAI-compatible HTTP API over the continuous-batching engine.

Names load on first use, so `import kgpt2` does not import FastAPI.

Example:
```python
import kgpt2
from kgpt2.serving import create_app

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
app = create_app(lm, "gpt2_tiny_random")  # mount it, or run it with uvicorn
```
"""

import importlib

# Public name -> the module that defines it.
_EXPORTS = {
    "create_app": "kgpt2.serving.app",
    "serve": "kgpt2.serving.server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kgpt2.serving' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
