"""The matrix-multiply peak this machine reaches at a training step's shapes.

A GPT-2 training step is almost all matrix products: per layer the q/k/v
projection (hidden x 3 hidden), the attention output (hidden x hidden) and
the feed-forward pair (hidden x intermediate, intermediate x hidden), then
the logits (hidden x vocabulary). `training_shapes` lists them as
`(m, k, n)` products of a `(m, k)` by a `(k, n)` matrix, `m` being the
tokens of a batch, together with the two backward products of each (the
input gradient `(m, n, k)` and the weight gradient `(k, m, n)`).

`matmul_peak` times those products with one library (XLA through JAX, or
TensorFlow's oneDNN kernels) and returns the GFLOP/s of each; the peak is
the fastest of them: what that library can compute on this machine, at
the step's own shapes, at the moment of measuring. `kgpt2 bench` measures
it in the same process right after training, so a training step's
model FLOP/s divided by it (the MFU, see `kgpt2.bench.flops`) says how
close the step is to the limit under the same load. `TORCH_PEAK_PROGRAM`
does the same with PyTorch, in another interpreter (the HF peer's).

Example:
```python
from kgpt2.bench.peak import matmul_peak, training_shapes

shapes = training_shapes(tokens=64, hidden=32, intermediate=128, vocabulary=256, backward=False)
peak = matmul_peak("jax", "float32", shapes, repeats=2)
print(len(peak["rates"]) == len(shapes), peak["peak_gflop_s"] > 0)  # True True
```
"""

import json
import subprocess
import time

import numpy as np

from kgpt2.checks import check_choice
from kgpt2.checks import check_integer

LIBRARIES = ("jax", "tensorflow")
DTYPES = ("float32", "bfloat16")


def training_shapes(tokens, hidden, intermediate, vocabulary, backward=True):
    """Return the distinct `(m, k, n)` matrix products of a GPT-2 training step.

    Forward products first (q/k/v, attention output, feed-forward in and
    out, logits); with `backward`, each one's input-gradient `(m, n, k)` and
    weight-gradient `(k, m, n)` products follow. Shapes that repeat (the
    feed-forward pair's input gradients are each other's forward products)
    are listed once.

    Example:
    ```python
    from kgpt2.bench.peak import training_shapes

    print(training_shapes(1024, 768, 3072, 50257, backward=False)[0])  # (1024, 768, 2304)
    print(len(training_shapes(1024, 768, 3072, 50257)))  # 12
    ```
    """
    forward = [
        (tokens, hidden, 3 * hidden),
        (tokens, hidden, hidden),
        (tokens, hidden, intermediate),
        (tokens, intermediate, hidden),
        (tokens, hidden, vocabulary),
    ]
    shapes = list(forward)
    if backward:
        for m, k, n in forward:
            shapes += [(m, n, k), (k, m, n)]
    return list(dict.fromkeys(shapes))


def _best_seconds(function, repeats):
    function()  # compile / warm up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return min(seconds)


def _jax_product(dtype):
    import jax
    import jax.numpy as jnp

    # bfloat16 products accumulate in float32, as kgpt2's mixed-precision
    # training step asks of XLA (`kgpt2.training.float32_accumulation`).
    accumulation = jnp.float32 if dtype == "bfloat16" else None
    product = jax.jit(lambda a, b: jnp.matmul(a, b, preferred_element_type=accumulation))

    def prepare(a, b):
        return jnp.asarray(a, dtype), jnp.asarray(b, dtype)

    return prepare, lambda a, b: product(a, b).block_until_ready(), f"XLA (jax {jax.__version__})"


def _tensorflow_product(dtype):
    import tensorflow as tf

    def prepare(a, b):
        return tf.constant(a, dtype), tf.constant(b, dtype)

    # An eager op is one oneDNN kernel call (what a traced graph runs too),
    # and on CPU it returns once the product is computed.
    return prepare, tf.linalg.matmul, f"TensorFlow {tf.__version__}"


def matmul_peak(library, dtype, shapes, repeats=3, seed=0):
    """Time `(m, k) @ (k, n)` for each shape with `library`; return the rates.

    Each product runs once to compile, then `repeats` times; the fastest
    run counts (a peak is what the machine reaches when nothing else gets
    in the way). Inputs are random normal, stored in `dtype` ("float32" or
    "bfloat16"); the product's dtype is the inputs', except that JAX's
    bfloat16 products return float32 (as kgpt2's mixed-precision training
    step on JAX computes them).

    Returns:
        `{"library", "dtype", "rates": [{"shape": [m, k, n], "gflop_s"}...],
        "peak_gflop_s"}`, the peak being the highest rate.

    Example:
    ```python
    from kgpt2.bench.peak import matmul_peak

    peak = matmul_peak("tensorflow", "float32", [(64, 32, 128)], repeats=2)
    print(peak["rates"][0]["shape"], peak["peak_gflop_s"] > 0)  # [64, 32, 128] True
    ```
    """
    check_choice(None, "library", library, LIBRARIES)
    check_choice(None, "dtype", dtype, DTYPES)
    check_integer(None, "repeats", repeats, minimum=1)
    maker = _jax_product if library == "jax" else _tensorflow_product
    prepare, product, name = maker(dtype)
    rng = np.random.default_rng(seed)
    rates = []
    for m, k, n in shapes:
        a, b = prepare(rng.standard_normal((m, k), dtype="float32"),
                       rng.standard_normal((k, n), dtype="float32"))
        seconds = _best_seconds(lambda: product(a, b), repeats)
        rates.append({"shape": [m, k, n], "gflop_s": 2 * m * k * n / seconds / 1e9})
    return {
        "library": name,
        "dtype": dtype,
        "rates": rates,
        "peak_gflop_s": max(rate["gflop_s"] for rate in rates),
    }


# Self-contained (the peer's interpreter has torch, not kgpt2): prints one
# JSON object like `matmul_peak`'s per dtype.
TORCH_PEAK_PROGRAM = """
import json, sys, time, torch
shapes, dtypes, repeats = json.loads(sys.argv[1])
torch.set_grad_enabled(False)
g = torch.Generator().manual_seed(0)
for dtype in dtypes:
    rates = []
    for m, k, n in shapes:
        a = torch.randn(m, k, generator=g).to(getattr(torch, dtype))
        b = torch.randn(k, n, generator=g).to(getattr(torch, dtype))
        torch.matmul(a, b)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.matmul(a, b)
            seconds.append(time.perf_counter() - start)
        rates.append({"shape": [m, k, n], "gflop_s": 2 * m * k * n / min(seconds) / 1e9})
    print(json.dumps({"library": "PyTorch " + torch.__version__, "dtype": dtype, "rates": rates,
                      "peak_gflop_s": max(r["gflop_s"] for r in rates)}), flush=True)
"""


def torch_matmul_peak(python, dtypes, shapes, repeats=3):
    """`matmul_peak` with PyTorch, run by the interpreter `python`; one result per dtype.

    Example:
    ```python
    from kgpt2.bench.peak import torch_matmul_peak

    # PYTHON: an interpreter with torch installed, such as the HF peer's.
    (peak,) = torch_matmul_peak("PYTHON", ["float32"], [(64, 32, 128)], repeats=2)
    print(peak["library"], peak["peak_gflop_s"])
    ```
    """
    arguments = json.dumps([[list(shape) for shape in shapes], list(dtypes), repeats])
    result = subprocess.run([python, "-c", TORCH_PEAK_PROGRAM, arguments],
                            capture_output=True, text=True, check=True)
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
