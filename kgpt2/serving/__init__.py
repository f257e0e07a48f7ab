"""Serving: an OpenAI-compatible HTTP API over the continuous-batching engine.

`import kgpt2` loads this package (and FastAPI) only on first use of
`kgpt2.serving`.

Example:
```python
import kgpt2
from kgpt2.serving import create_app

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
app = create_app(lm, "gpt2_tiny_random")  # mount it, or run it with uvicorn
```
"""

from kgpt2.serving.app import create_app
from kgpt2.serving.server import serve

__all__ = ["create_app", "serve"]
