"""kgpt2: fine-tune GPT-2 and generate text with it, Keras-natively.

Importing kgpt2 picks the Keras backend when the user has not: JAX, because it
measured fastest for GPT-2 generation on CPU (see the "Backend" section of
docs/fine-tuning.md, and `kgpt2.keras_backend`). Set `KERAS_BACKEND=tensorflow` before
importing to use TensorFlow.

`import kgpt2` itself loads nothing heavy: each public name and subpackage
(`kgpt2.load`, `kgpt2.bench`, ...) is imported on first use (see
`kgpt2.lazy`), so the `kgpt2` command starts without Keras or TensorFlow.

Example:
```python
import kgpt2

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
print(kgpt2.generate(lm, "The quick brown fox", max_length=16))
```
"""

import os

# None of these imports Keras or TensorFlow.
from kgpt2.errors import Error
from kgpt2.keras_backend import set_default_backend
from kgpt2.lazy import lazy_exports

# Must run before the first `import keras` anywhere in the process.
set_default_backend()
# TensorFlow is only our data engine here: keep its C++ start-up chatter quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# Public function or class -> the module that defines it. Subpackages
# (bench, data, generation, presets, samplers, training) load the same way.
_EXPORTS = {
    "PresetError": "kgpt2.presets",
    "Recipe": "kgpt2.training.recipe",
    "RunOptions": "kgpt2.training.run_options",
    "compile_lm": "kgpt2.training.compiling",
    "connect_processes": "kgpt2.training.processes",
    "export": "kgpt2.presets.exporting",
    "finetune": "kgpt2.training.finetune",
    "generate": "kgpt2.generation.text",
    "load": "kgpt2.presets",
    "plan": "kgpt2.training.memory_plan",
    "save": "kgpt2.presets",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "Error", "PresetError", "Recipe", "RunOptions", "bench", "compile_lm", "connect_processes", "data", "export",
    "finetune", "generate", "load", "plan", "presets", "samplers", "save", "__version__",
]
