"""Next-token accuracy without an argmax over the vocabulary.

Keras's `"accuracy"` for integer labels compares the label with
`argmax(logits)`. On a CPU that argmax is a slow reduction: on
`gpt2_tiny_random` at 8 x 48 tokens it took about a fifth of the mixed
precision training step, mostly because it runs over all 50,257 logits of
every token. The same answer is whether the label's logit is the largest
one: a gather and a max (at 384 x 50,257 on a 2-core CPU, about 9 ms against
49-60 ms for the argmax).

Example:
```python
import numpy as np
from kgpt2.training.accuracy import NextTokenAccuracy

metric = NextTokenAccuracy()
logits = np.array([[[0.1, 2.0, 0.3], [1.0, 0.0, 0.5]]], "float32")
metric.update_state(np.array([[1, 2]]), logits)
print(float(metric.result()))  # 0.5
```
"""

import keras
from keras import ops


def label_has_the_largest_logit(y_true, y_pred):
    """1.0 where the label's logit is the largest of its row, else 0.0.

    Equal to `argmax(y_pred) == y_true` except where the largest logit is
    tied, where every tied label counts as right (argmax picks the first).

    Example:
    ```python
    import numpy as np
    from kgpt2.training.accuracy import label_has_the_largest_logit

    logits = np.array([[0.1, 2.0, 0.3], [1.0, 0.0, 0.5]], "float32")
    print(np.asarray(label_has_the_largest_logit(np.array([1, 2]), logits)))  # [1. 0.]
    ```
    """
    labels = ops.expand_dims(ops.cast(y_true, "int32"), -1)
    label_logit = ops.take_along_axis(y_pred, labels, axis=-1)[..., 0]
    return ops.cast(label_logit >= ops.max(y_pred, axis=-1), "float32")


@keras.saving.register_keras_serializable(package="kgpt2")
class NextTokenAccuracy(keras.metrics.MeanMetricWrapper):
    """How often the label is the model's most likely next token.

    What `"accuracy"` reports for integer labels and logits (see
    `label_has_the_largest_logit` for ties), computed without an argmax.
    Logged as `accuracy`.

    Example:
    ```python
    import keras
    import numpy as np
    from kgpt2.training.accuracy import NextTokenAccuracy

    rng = np.random.default_rng(0)
    labels, logits = rng.integers(0, 50, (4, 8)), rng.normal(size=(4, 8, 50))
    ours, keras_own = NextTokenAccuracy(), keras.metrics.SparseCategoricalAccuracy()
    ours.update_state(labels, logits)
    keras_own.update_state(labels, logits)
    print(float(ours.result()) == float(keras_own.result()))  # True
    ```
    """

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(label_has_the_largest_logit, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}
