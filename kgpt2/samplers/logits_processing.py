"""Repetition penalty, no-repeat-ngram and min-p as pure `keras.ops` math.

These functions run inside the compiled generate loop (jit on JAX, XLA on
TensorFlow): fixed shapes, no Python per token, no host round trips. They see
what a KerasHub sampler's `next` sees: the token buffer `token_ids` of shape
`(batch, max_length)` and the decode position `index` (an int or a scalar int
tensor). Positions `< index` hold the tokens present so far (prompt and
output); later positions are not written yet and are ignored. Looking at the
buffer rather than keeping a running record makes the rules stateless, so
they stay right when beam search reorders its rows.

Example:
```python
import numpy as np
from kgpt2.samplers import logits_processing

logits = np.array([[2.0, -1.0, 0.5, 3.0]], "float32")
token_ids = np.array([[0, 1, 3, 3]], "int32")  # only positions < 2 count
print(logits_processing.apply_repetition_penalty(logits, token_ids, 2, 2.0))
# [[ 1.  -2.   0.5  3. ]]
```
"""

from keras import ops

# What a banned token's logit becomes. Finite, like the -1e9 KerasHub's
# BeamSampler uses for impossible beams: softmax still gives exactly 0, and
# dividing by a temperature cannot produce inf - inf = NaN.
BANNED_LOGIT = -1e9


def tokens_to_vocab_mask(tokens, selected, vocab_size):
    """Scatter `tokens[b, i]` where `selected[b, i]` into a (batch, vocab) mask.

    A scatter-add of `batch * length` ones: memory stays `batch * vocab`
    instead of the `batch * length * vocab` a one-hot would need.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.logits_processing import tokens_to_vocab_mask

    mask = tokens_to_vocab_mask(np.array([[1, 3]]), np.array([[True, False]]), vocab_size=4)
    print(np.asarray(mask).tolist())  # [[False, True, False, False]]
    ```
    """
    tokens = ops.cast(tokens, "int32")
    shape = ops.shape(tokens)
    rows = ops.broadcast_to(ops.arange(shape[0], dtype="int32")[:, None], shape)
    indices = ops.reshape(ops.stack([rows, tokens], axis=-1), (-1, 2))
    counts = ops.scatter(
        indices,
        ops.reshape(ops.cast(ops.broadcast_to(selected, shape), "float32"), (-1,)),
        (shape[0], vocab_size),
    )
    return counts > 0


def present_token_mask(token_ids, index, vocab_size):
    """Which vocabulary entries occur in `token_ids[:, :index]`.

    Returns a `(batch, vocab_size)` bool tensor.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.logits_processing import present_token_mask

    token_ids = np.array([[2, 0, 1]], "int32")
    print(present_token_mask(token_ids, 2, vocab_size=4))
    # [[ True False  True False]]
    ```
    """
    length = ops.shape(token_ids)[1]
    written = ops.arange(length, dtype="int32")[None, :] < index
    return tokens_to_vocab_mask(token_ids, written, vocab_size)


def apply_repetition_penalty(logits, token_ids, index, penalty):
    """The CTRL / Hugging Face repetition penalty.

    For every token present in `token_ids[:, :index]`, a positive logit is
    divided by `penalty` and a negative one multiplied by it, so `penalty > 1`
    makes repeats less likely whatever the logit's sign. Other tokens keep
    their logits. Returns float32 logits.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.logits_processing import apply_repetition_penalty

    logits = np.array([[2.0, -1.0, 0.5]], "float32")
    token_ids = np.array([[0, 1]], "int32")
    print(apply_repetition_penalty(logits, token_ids, 2, 2.0))
    # [[ 1.  -2.   0.5]]
    ```
    """
    logits = ops.cast(logits, "float32")
    present = present_token_mask(token_ids, index, ops.shape(logits)[-1])
    penalized = ops.where(logits > 0, logits / penalty, logits * penalty)
    return ops.where(present, penalized, logits)


def banned_ngram_mask(token_ids, index, ngram_size, vocab_size):
    """Tokens that would complete an n-gram already in `token_ids[:, :index]`.

    The Hugging Face `no_repeat_ngram_size` rule: take the last
    `ngram_size - 1` tokens before `index`; every token that followed the
    same `ngram_size - 1` tokens earlier is banned. `ngram_size=1` bans every
    token present so far. Returns a `(batch, vocab_size)` bool tensor.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.logits_processing import banned_ngram_mask

    # "5 6 7 5 6": the 3-gram "5 6 7" exists, so after "5 6" token 7 is banned.
    token_ids = np.array([[5, 6, 7, 5, 6, 0]], "int32")
    print(np.flatnonzero(banned_ngram_mask(token_ids, 5, 3, vocab_size=8)[0]))
    # [7]
    ```
    """
    batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    num_windows = length - ngram_size + 1
    if num_windows < 1:
        return ops.zeros((batch_size, vocab_size), dtype="bool")
    # Window w is the n-gram at positions w .. w + ngram_size - 1; it counts
    # once it is fully written, and its last token is the candidate to ban.
    ends = ops.arange(num_windows, dtype="int32") + (ngram_size - 1)
    matches = ops.broadcast_to(ends[None, :] < index, (batch_size, num_windows))
    if ngram_size > 1:
        start = ops.maximum(ops.cast(index, "int32") - (ngram_size - 1), 0)
        prefix = ops.slice(token_ids, [0, start], [batch_size, ngram_size - 1])
        # A static loop over the n-gram length, not over tokens.
        for offset in range(ngram_size - 1):
            window = token_ids[:, offset : offset + num_windows]
            matches = ops.logical_and(
                matches, ops.equal(window, prefix[:, offset : offset + 1])
            )
    return tokens_to_vocab_mask(token_ids[:, ngram_size - 1 :], matches, vocab_size)


def apply_no_repeat_ngram(logits, token_ids, index, ngram_size):
    """Set the logits `banned_ngram_mask` selects to `BANNED_LOGIT`.

    Returns float32 logits.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.logits_processing import apply_no_repeat_ngram

    logits = np.zeros((1, 8), "float32")
    token_ids = np.array([[5, 6, 7, 5, 6, 0]], "int32")
    print(float(apply_no_repeat_ngram(logits, token_ids, 5, 3)[0, 7]))  # -1000000000.0
    ```
    """
    logits = ops.cast(logits, "float32")
    banned = banned_ngram_mask(token_ids, index, ngram_size, ops.shape(logits)[-1])
    return ops.where(banned, BANNED_LOGIT, logits)


def apply_min_p(probabilities, min_p):
    """Zero every probability below `min_p` times the largest one (min-p).

    The result is not renormalized: KerasHub's samplers sample with
    `categorical(log(p))`, which needs no normalization, and keeping the
    surviving values unchanged means a top-p cut made afterwards is the same
    as on the full distribution (min-p only removes the tail), matching the
    Hugging Face order temperature -> top-k -> top-p -> min-p.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.logits_processing import apply_min_p

    probabilities = np.array([[0.5, 0.3, 0.15, 0.05]], "float32")
    print(apply_min_p(probabilities, 0.5))  # [[0.5 0.3 0.  0. ]]
    ```
    """
    threshold = min_p * ops.max(probabilities, axis=-1, keepdims=True)
    return ops.where(
        probabilities >= threshold, probabilities, ops.zeros_like(probabilities)
    )
