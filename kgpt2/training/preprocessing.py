"""Train on tokenized datasets: detach the preprocessor from `lm` during fit.

KerasHub's `fit` maps `lm.preprocessor` over every dataset it is given, so a
dataset that already yields `(x, y, sample_weight)` token batches would be
tokenized twice and fail. These context managers detach the preprocessor for
such datasets and always reattach it, also when training raises.
"""

import contextlib


def is_tokenized(dataset):
    """True when `dataset` yields model inputs rather than raw text.

    Example:
    ```python
    import tensorflow as tf
    from kgpt2.training.preprocessing import is_tokenized

    print(is_tokenized(tf.data.Dataset.from_tensor_slices(["a b"]).batch(1)))  # False
    ```
    """
    import tensorflow as tf

    spec = dataset.element_spec
    first = spec[0] if isinstance(spec, tuple) else spec
    return not (isinstance(first, tf.TensorSpec) and first.dtype == tf.string)


@contextlib.contextmanager
def detached_preprocessor(lm, detach=True):
    """Set `lm.preprocessor = None` inside the block (if `detach`), then restore it.

    Example:
    ```python
    import kgpt2
    from kgpt2.training.preprocessing import detached_preprocessor

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    with detached_preprocessor(lm) as preprocessor:
        print(lm.preprocessor is None, preprocessor is not None)  # True True
    print(lm.preprocessor is preprocessor)  # True
    ```
    """
    preprocessor = lm.preprocessor
    if detach:
        lm.preprocessor = None
    try:
        yield preprocessor
    finally:
        if detach:
            lm.preprocessor = preprocessor


@contextlib.contextmanager
def attached_preprocessor(lm, preprocessor):
    """Attach `preprocessor` inside the block when `lm` has none (to save or generate)."""
    if lm.preprocessor is not None or preprocessor is None:
        yield lm
        return
    lm.preprocessor = preprocessor
    try:
        yield lm
    finally:
        lm.preprocessor = None
