"""`TokenCrossEntropy`: Keras's sparse cross-entropy from logits, in one pass over the vocabulary.

The loss of a token is `logsumexp(logits) - logits[target]`, the value of
`keras.losses.SparseCategoricalCrossentropy(from_logits=True)`, which this
class is (a subclass: same options, config and reductions). On JAX, Keras
computes it as the full log-softmax times a one-hot target (two arrays of
batch x length x vocabulary floats, 50257 per token for GPT-2) and
differentiates through both; here XLA reduces the logits once (their
log-sum-exp) and picks one logit per token, and the gradient is one softmax
minus the one-hot target. Measured on the 8 x 128 x 50257 logits of a GPT-2
step, forward and backward take about a third of the time. On TensorFlow,
Keras already calls the fused `sparse_softmax_cross_entropy_with_logits`
kernel, which is kept.

Example:
```python
import numpy as np
from kgpt2.training.loss import TokenCrossEntropy

logits = np.log(np.array([[[0.5, 0.25, 0.25]]], "float32"))
loss = TokenCrossEntropy(reduction="mean_with_sample_weight")
print(round(float(loss(np.array([[1]]), logits)), 4))  # 1.3863
```
"""

import keras
from keras import ops


def token_cross_entropy(y_true, y_pred, axis=-1):
    """Per-token `logsumexp(y_pred) - y_pred[y_true]` along `axis` (logits, integer targets).

    Example:
    ```python
    import numpy as np
    from kgpt2.training.loss import token_cross_entropy

    logits = np.log(np.array([[0.5, 0.5], [0.9, 0.1]], "float32"))
    print(np.round(np.asarray(token_cross_entropy(np.array([0, 1]), logits)), 3))  # [0.693 2.303]
    ```
    """
    targets = ops.expand_dims(ops.cast(y_true, "int32"), axis)
    picked = ops.squeeze(ops.take_along_axis(y_pred, targets, axis=axis), axis)
    return ops.logsumexp(y_pred, axis=axis) - picked


@keras.saving.register_keras_serializable(package="kgpt2")
class TokenCrossEntropy(keras.losses.SparseCategoricalCrossentropy):
    """`SparseCategoricalCrossentropy(from_logits=True)`, one pass over the logits.

    Args:
        reduction, name, dtype: as for `SparseCategoricalCrossentropy`;
            kgpt2 trains with `reduction="mean_with_sample_weight"` (the
            mean over the real, non-padding tokens).
    """

    def __init__(self, reduction="sum_over_batch_size", name="token_cross_entropy", dtype=None,
                 **kwargs):
        # `from_logits` and `ignore_class` come back from a saved config.
        kwargs.update(from_logits=True, ignore_class=None)
        super().__init__(reduction=reduction, name=name, dtype=dtype, **kwargs)

    def call(self, y_true, y_pred):
        if keras.config.backend() != "jax":
            return super().call(y_true, y_pred)
        if len(y_true.shape) == len(y_pred.shape):
            y_true = ops.squeeze(y_true, -1)
        return token_cross_entropy(y_true, y_pred)
