"""What the benchmark needs to know about, and do to, the model it measures."""

# One context manager serves training and benchmarks: see its docstring.
from kgpt2.training.preprocessing import detached_preprocessor  # noqa: F401


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
