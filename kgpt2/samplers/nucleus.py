"""The top-p (nucleus) cut and a draw, without sorting the vocabulary.

KerasHub's `TopPSampler` sorts all 50,257 probabilities every step to find
the smallest set whose mass reaches `p`; on a CPU that sort costs more than
the rest of the sampler and a good part of the model's step. The same set is
`{token: probability >= v}`, where `v` is the largest probability such that
the tokens at or above it hold at least `p` of the mass. `nucleus_mask` finds
`v` exactly by bisecting on the bits of a float32 (positive floats order like
their bit patterns), 31 passes of a compare-and-sum over the vocabulary.
`draw` then samples from the kept probabilities with one uniform number per
row (an inverse-CDF lookup by blocks), instead of one random number per token.

Tied probabilities at the cut are all kept (a sort keeps an arbitrary
subset of them), which only matters for exactly equal values.

Example:
```python
import numpy as np
from kgpt2.samplers.nucleus import nucleus_mask

probabilities = np.array([[0.1, 0.5, 0.15, 0.25]], "float32")
print(np.asarray(nucleus_mask(probabilities, 0.7)))
# [[False  True False  True]]
```
"""

from keras import ops
from keras import random

# Bit pattern of float32 1.0: no probability lies above it.
_ONE_BITS = 0x3F800000


def _mass_at_or_above(probabilities, bits):
    """Mass of the tokens whose probability is at least `view(bits)`."""
    threshold = ops.view(bits, "float32")
    kept = ops.where(probabilities >= threshold, probabilities, 0.0)
    return ops.sum(kept, axis=-1, keepdims=True)


def nucleus_threshold(probabilities, p):
    """The smallest probability top-p keeps, per row: shape `(batch, 1)`.

    `probabilities` are float32 of shape `(batch, vocab)`. The cut is at an
    absolute mass of `p`, as in KerasHub: after min-p has zeroed the tail,
    the kept set is the one the full distribution would give (every nonzero
    token if less than `p` is left).

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.nucleus import nucleus_threshold

    probabilities = np.array([[0.1, 0.5, 0.15, 0.25]], "float32")
    print(np.asarray(nucleus_threshold(probabilities, 0.7)))  # [[0.25]]
    ```
    """
    probabilities = ops.cast(probabilities, "float32")
    rows = ops.shape(probabilities)[0]
    if p >= 1:
        # Everything; a float32 sum of the tail may round just below 1.
        return ops.zeros((rows, 1), "float32")
    target = ops.convert_to_tensor(p, "float32")
    # Invariant: mass(low) >= target (low = 0 keeps everything) and
    # mass(high) < target or high is past every probability.
    low = ops.zeros((rows, 1), "int32")
    high = ops.full((rows, 1), _ONE_BITS + 1, "int32")

    def halve(_, bounds):
        low, high = bounds
        middle = low + (high - low) // 2
        enough = _mass_at_or_above(probabilities, middle) >= target
        return ops.where(enough, middle, low), ops.where(enough, high, middle)

    low, _ = ops.fori_loop(0, 31, halve, (low, high))
    return ops.view(low, "float32")


def nucleus_mask(probabilities, p):
    """Which tokens top-p with `p` keeps: bool of shape `(batch, vocab)`.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.nucleus import nucleus_mask

    probabilities = np.array([[0.6, 0.3, 0.1]], "float32")
    print(np.asarray(nucleus_mask(probabilities, 0.5)))  # [[ True False False]]
    ```
    """
    return probabilities >= nucleus_threshold(probabilities, p)


def draw(probabilities, seed_generator, block=256):
    """One token per row, with chance proportional to `probabilities`.

    Zero entries are never drawn. The lookup goes by blocks of `block`
    tokens (a running sum over the block totals, then within the chosen
    block), which reads the vocabulary once instead of running one long
    sequential sum. Returns int32 of shape `(batch,)`.

    Example:
    ```python
    import keras
    import numpy as np
    from kgpt2.samplers.nucleus import draw

    probabilities = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]], "float32")
    print(np.asarray(draw(probabilities, keras.random.SeedGenerator(1))))  # [1 2]
    ```
    """
    probabilities = ops.cast(probabilities, "float32")
    rows, vocab = ops.shape(probabilities)
    blocks = -(-vocab // block)
    padded = ops.pad(probabilities, [[0, 0], [0, blocks * block - vocab]])
    grid = ops.reshape(padded, (rows, blocks, block))
    block_mass = ops.sum(grid, axis=-1)
    block_cumulative = ops.cumsum(block_mass, axis=-1)
    total = block_cumulative[:, -1:]
    # In (0, total]: a zero-probability token never reaches the draw first.
    uniform = random.uniform(ops.shape(total), seed=seed_generator)
    target = (1.0 - uniform) * total
    chosen = ops.sum(ops.cast(block_cumulative < target, "int32"), axis=-1)
    chosen = ops.minimum(chosen, blocks - 1)[:, None]
    mass_before = ops.take_along_axis(block_cumulative - block_mass, chosen, axis=-1)
    inside = ops.take_along_axis(grid, chosen[:, :, None], axis=1)[:, 0]
    within = ops.cumsum(inside, axis=-1) + mass_before
    position = ops.minimum(ops.sum(ops.cast(within < target, "int32"), axis=-1), block - 1)
    return ops.minimum(chosen[:, 0] * block + position, vocab - 1)
