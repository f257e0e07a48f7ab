"""Fine-tuning: the `Recipe`, named runs (`RunOptions`), crash-safe checkpoints.

Example:
```python
import kgpt2
import tensorflow as tf

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
poems = tf.data.Dataset.from_tensor_slices(["床前明月光，疑是地上霜。"] * 32).batch(8)
recipe = kgpt2.Recipe(epochs=2, learning_rate=1e-3)
result = kgpt2.finetune(lm, poems, recipe=recipe, run_name="poems")
lm = kgpt2.load("checkpoint/poems")  # the latest checkpoint
```

Names load on first use, so that `kgpt2 plan` (which needs only
`kgpt2.training.memory_plan`) starts without Keras.
"""

from kgpt2.lazy import lazy_exports

_EXPORTS = {
    "FinetuneResult": "kgpt2.training.finetune",
    "Recipe": "kgpt2.training.recipe",
    "RunDirectory": "kgpt2.training.checkpoints",
    "RunOptions": "kgpt2.training.run_options",
    "WarmupPolynomialDecay": "kgpt2.training.schedule",
    "compile_lm": "kgpt2.training.compiling",
    "connect_processes": "kgpt2.training.processes",
    "finetune": "kgpt2.training.finetune",
    "validate_run_name": "kgpt2.runs",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
