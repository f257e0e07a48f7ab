"""Fine-tuning: the reference compile recipe, named runs, crash-safe checkpoints.

Example:
```python
import kgpt2
import tensorflow as tf

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
poems = tf.data.Dataset.from_tensor_slices(["床前明月光，疑是地上霜。"] * 32).batch(8)
result = kgpt2.finetune(lm, poems, epochs=2, learning_rate=1e-3, run_name="poems")
lm = kgpt2.load("checkpoint/poems")  # the latest checkpoint
```

Names load on first use, so that `kgpt2 plan` (which needs only
`kgpt2.training.memory_plan`) starts without Keras.
"""

from kgpt2.lazy import lazy_exports

_EXPORTS = {
    "FinetuneResult": "kgpt2.training.finetune",
    "RunDirectory": "kgpt2.training.checkpoints",
    "WarmupPolynomialDecay": "kgpt2.training.schedule",
    "compile": "kgpt2.training.compile",
    "finetune": "kgpt2.training.finetune",
    "validate_run_name": "kgpt2.training.runs",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
