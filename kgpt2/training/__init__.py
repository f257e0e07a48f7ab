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
"""

from kgpt2.training.checkpoints import RunDirectory
from kgpt2.training.compiling import compile
from kgpt2.training.finetune import FinetuneResult
from kgpt2.training.finetune import finetune
from kgpt2.training.recipe import Recipe
from kgpt2.training.run_options import RunOptions
from kgpt2.runs import validate_run_name

__all__ = [
    "FinetuneResult",
    "Recipe",
    "RunDirectory",
    "RunOptions",
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
