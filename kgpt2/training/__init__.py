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
"""

from kgpt2.training.checkpoints import RunDirectory
from kgpt2.training.compile import compile
from kgpt2.training.finetune import FinetuneResult
from kgpt2.training.finetune import finetune
from kgpt2.runs import validate_run_name

__all__ = [
    "FinetuneResult",
    "RunDirectory",
    "WarmupPolynomialDecay",
    "compile",
    "finetune",
    "validate_run_name",
]


def __getattr__(name):
    # The schedule subclasses a Keras class: import Keras only when asked,
    # so that `import kgpt2` (and `kgpt2 --help`) stays instant.
    if name == "WarmupPolynomialDecay":
        from kgpt2.training.schedule import WarmupPolynomialDecay

        return WarmupPolynomialDecay
    raise AttributeError(f"module 'kgpt2.training' has no attribute {name!r}")
