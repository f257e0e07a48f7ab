"""kgpt2: fine-tune GPT-2 and generate text with it, Keras-natively.

Importing kgpt2 picks the Keras backend when the user has not: JAX, because it
measured fastest for GPT-2 generation on CPU (see the README's "Backend"
section). Set `KERAS_BACKEND=tensorflow` before importing to use TensorFlow.

Example:
```python
import kgpt2

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
print(lm.generate("The quick brown fox", max_length=16))
```
"""

import os

# Must run before the first `import keras` anywhere in the process.
os.environ.setdefault("KERAS_BACKEND", "jax")
# TensorFlow is only our data engine here: keep its C++ start-up chatter quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kgpt2.errors import Error  # noqa: E402
from kgpt2 import presets  # noqa: E402
from kgpt2 import data  # noqa: E402
from kgpt2.presets import PresetError  # noqa: E402
from kgpt2.presets import load  # noqa: E402
from kgpt2.presets import save  # noqa: E402
from kgpt2 import samplers  # noqa: E402
from kgpt2.training import Recipe, RunOptions, compile, finetune  # noqa: E402, A004
from kgpt2.training.memory_plan import plan  # noqa: E402
from kgpt2.generation.text import generate  # noqa: E402
from kgpt2.bench import bench  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Error", "PresetError", "Recipe", "RunOptions", "bench", "compile", "data", "finetune", "generate", "load", "plan", "presets",
    "samplers", "save", "__version__",
]
