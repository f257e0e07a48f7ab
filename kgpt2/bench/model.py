"""What the benchmark needs to know about, and do to, the model it measures."""

import contextlib


@contextlib.contextmanager
def detached_preprocessor(lm):
    """Run a block with `lm.preprocessor` set to None, then put it back.

    KerasHub's documented way to generate from, and train on, token ids that
    are already preprocessed is a task without a preprocessor.

    Example:
    ```python
    import kgpt2
    from kgpt2.bench.model import detached_preprocessor

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    with detached_preprocessor(lm):
        print(lm.preprocessor)  # None
    print(lm.preprocessor is not None)  # True
    ```
    """
    preprocessor, lm.preprocessor = lm.preprocessor, None
    try:
        yield lm
    finally:
        lm.preprocessor = preprocessor


def model_info(lm, preset):
    """Return the preset name, parameter count, dtype and weight bytes of `lm`.

    Example:
    ```python
    import kgpt2
    from kgpt2.bench.model import model_info

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    print(model_info(lm, "gpt2_tiny_random")["dtype"])  # float32
    ```
    """
    import numpy as np

    weights = lm.backbone.weights
    return {
        "preset": str(preset),
        "params": int(sum(np.prod(w.shape) for w in weights)),
        "weight_bytes": int(sum(np.prod(w.shape) * np.dtype(w.dtype).itemsize for w in weights)),
        "dtype": str(weights[0].dtype),
    }
