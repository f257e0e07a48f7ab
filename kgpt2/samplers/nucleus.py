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

    `probabilities` are float32 of shape `(batch, vocab)`; `p` is a float or
    a `(batch, 1)` array (one `p` per row). The cut is at an absolute mass
    of `p`, as in KerasHub: after min-p has zeroed the tail, the kept set is
    the one the full distribution would give (every nonzero token if less
    than `p` is left). A row with `p >= 1` keeps everything.

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
    if isinstance(p, (int, float)) and p >= 1:
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
    # p >= 1 keeps everything: a float32 sum of the tail may round below 1.
    return ops.where(target >= 1, 0.0, ops.view(low, "float32"))


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

    Zero entries are never drawn. Draws one uniform number per row from
    `seed_generator` and looks it up with `draw_at`. Returns int32 of shape
    `(batch,)`.

    Example:
    ```python
    import keras
    import numpy as np
    from kgpt2.samplers.nucleus import draw

    probabilities = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]], "float32")
    print(np.asarray(draw(probabilities, keras.random.SeedGenerator(1))))  # [1 2]
    ```
    """
    rows = ops.shape(probabilities)[0]
    return draw_at(probabilities, random.uniform((rows,), seed=seed_generator), block)


def draw_at(probabilities, uniforms, block=256):
    """The token at each row's point `uniforms` of its cumulative `probabilities`.

    `uniforms` are `(batch,)` numbers in [0, 1); the token drawn is the one
    whose share of the row's total mass covers `(1 - u) * total`, so equal
    uniforms pick the same token and a zero entry is never picked. The
    lookup goes by blocks of `block` tokens (a running sum over the block
    totals, then within the chosen block), which reads the vocabulary once
    instead of running one long sequential sum. Returns int32 `(batch,)`.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.nucleus import draw_at

    probabilities = np.array([[0.5, 0.0, 0.5], [0.5, 0.0, 0.5]], "float32")
    print(np.asarray(draw_at(probabilities, np.array([0.9, 0.1], "float32"))))  # [0 2]
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
    # In (0, total]: a zero-probability token never reaches the target first.
    target = (1.0 - ops.reshape(ops.cast(uniforms, "float32"), (rows, 1))) * total
    # Rounding may put the target past the last block that holds any mass.
    last_block = ops.max(ops.where(block_mass > 0, ops.arange(blocks)[None, :], 0), axis=-1)
    chosen = ops.sum(ops.cast(block_cumulative < target, "int32"), axis=-1)
    chosen = ops.minimum(chosen, last_block)[:, None]
    mass_before = ops.take_along_axis(block_cumulative - block_mass, chosen, axis=-1)
    inside = ops.take_along_axis(grid, chosen[:, :, None], axis=1)[:, 0]
    within = ops.cumsum(inside, axis=-1) + mass_before
    last = ops.max(ops.where(inside > 0, ops.arange(block)[None, :], 0), axis=-1)
    position = ops.minimum(ops.sum(ops.cast(within < target, "int32"), axis=-1), last)
    return ops.cast(chosen[:, 0] * block + position, "int32")
