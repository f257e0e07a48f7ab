"""Logits rules as pure `keras.ops` math, with per-row parameters.

These functions run inside compiled loops (jit on JAX, XLA on TensorFlow):
fixed shapes, no Python per token, no host round trips. Both users call
them: the `kgpt2.samplers` classes (one setting for the whole batch, a
scalar decode position) and the continuous-batching engine (every row with
its own settings and position, `kgpt2.generation.row_sampling`). So each
parameter may be a Python number, a scalar tensor, or a `(batch,)` array
with one value per row, and `index` (how many tokens each row holds) a
scalar or a `(batch,)` array.

They see the token buffer `token_ids` of shape `(batch, length)`: positions
`< index` hold the tokens present so far (prompt and output); later
positions are not written yet and are ignored. Looking at the buffer rather
than keeping a running record makes the rules stateless, so they stay right
when beam search reorders its rows.

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

from kgpt2.checks import check_number
from kgpt2.errors import InputError

# What a banned token's logit becomes. Finite, like the -1e9 KerasHub's
# BeamSampler uses for impossible beams: softmax still gives exactly 0, and
# dividing by a temperature cannot produce inf - inf = NaN.
BANNED_LOGIT = -1e9

# A `logit_bias` of this value bans the token outright (OpenAI's meaning).
BAN_BIAS = -100.0

# The most `logit_bias` entries (OpenAI's limit too).
MAX_LOGIT_BIAS = 300


def per_row(value, dtype="float32"):
    """`value` (a number, scalar or `(batch,)`) as a `(batch or 1, 1)` tensor.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.logits_processing import per_row

    print(per_row(np.array([1.0, 2.0])).shape, per_row(0.5).shape)  # (2, 1) (1, 1)
    ```
    """
    return ops.reshape(ops.cast(ops.convert_to_tensor(value), dtype), (-1, 1))


def token_counts(tokens, selected, vocab_size):
    """How often each vocabulary entry occurs in `tokens` where `selected`.

    `tokens` is `(batch, length)` int, `selected` a bool mask broadcastable
    to it. A scatter-add of `batch * length` values: memory stays
    `batch * vocab` instead of the `batch * length * vocab` a one-hot would
    need. Returns float32 `(batch, vocab_size)`.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.logits_processing import token_counts

    tokens = np.array([[2, 2, 1, 3]], "int32")
    print(token_counts(tokens, np.array([[True, True, True, False]]), 4))
    # [[0. 1. 2. 0.]]
    ```
    """
    tokens = ops.cast(tokens, "int32")
    shape = ops.shape(tokens)
    rows = ops.broadcast_to(ops.arange(shape[0], dtype="int32")[:, None], shape)
    indices = ops.reshape(ops.stack([rows, tokens], axis=-1), (-1, 2))
    return ops.scatter(
        indices,
        ops.reshape(ops.cast(ops.broadcast_to(selected, shape), "float32"), (-1,)),
        (shape[0], vocab_size),
    )


def tokens_to_vocab_mask(tokens, selected, vocab_size):
    """Which vocabulary entries occur in `tokens` where `selected`: bool
    `(batch, vocab_size)` (see `token_counts`).

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.logits_processing import tokens_to_vocab_mask

    mask = tokens_to_vocab_mask(np.array([[1, 3]]), np.array([[True, False]]), vocab_size=4)
    print(np.asarray(mask).tolist())  # [[False, True, False, False]]
    ```
    """
    return token_counts(tokens, selected, vocab_size) > 0


def written_mask(token_ids, index, start=0):
    """Which positions of `token_ids` hold tokens: `start <= position < index`.

    `index` and `start` are scalars or `(batch,)`. Returns bool
    `(batch or 1, length)`.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.logits_processing import written_mask

    token_ids = np.zeros((2, 4), "int32")
    print(written_mask(token_ids, np.array([2, 3]), start=1))
    # [[False  True False False]
    #  [False  True  True False]]
    ```
    """
    positions = ops.arange(ops.shape(token_ids)[1], dtype="int32")[None, :]
    return ops.logical_and(
        positions >= per_row(start, "int32"), positions < per_row(index, "int32")
    )


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
    return tokens_to_vocab_mask(token_ids, written_mask(token_ids, index), vocab_size)


def apply_repetition_penalty(logits, token_ids, index, penalty):
    """The CTRL / Hugging Face repetition penalty.

    For every token present in `token_ids[:, :index]`, a positive logit is
    divided by `penalty` and a negative one multiplied by it, so `penalty > 1`
    makes repeats less likely whatever the logit's sign. Other tokens keep
    their logits. `penalty` may differ per row. Returns float32 logits.

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
    factor = per_row(penalty)
    penalized = ops.where(logits > 0, logits / factor, logits * factor)
    return ops.where(present, penalized, logits)


def apply_presence_frequency_penalty(logits, counts, presence_penalty, frequency_penalty):
    """OpenAI's presence and frequency penalties.

    `logits[j] -= counts[j] * frequency_penalty + (counts[j] > 0) *
    presence_penalty`, where `counts` (`(batch, vocab)`, see `token_counts`)
    counts each token in the text generated so far. Positive values make
    repeats less likely, negative ones more. Returns float32 logits.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.logits_processing import apply_presence_frequency_penalty

    logits = np.zeros((1, 3), "float32")
    counts = np.array([[0.0, 1.0, 3.0]], "float32")
    print(apply_presence_frequency_penalty(logits, counts, 0.5, 0.25))
    # [[ 0.   -0.75 -1.25]]
    ```
    """
    logits = ops.cast(logits, "float32")
    counts = ops.cast(counts, "float32")
    penalty = counts * per_row(frequency_penalty)
    penalty = penalty + ops.cast(counts > 0, "float32") * per_row(presence_penalty)
    return logits - penalty


def apply_logit_bias(logits, bias_ids, bias_values):
    """Add `bias_values[b, i]` to `logits[b, bias_ids[b, i]]` (OpenAI's `logit_bias`).

    `bias_ids` and `bias_values` are `(batch or 1, entries)`; unused entries
    have value 0. A bias of `BAN_BIAS` (-100) bans the token: its logit
    becomes `BANNED_LOGIT`. Returns float32 logits.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.logits_processing import apply_logit_bias

    logits = np.zeros((1, 4), "float32")
    print(apply_logit_bias(logits, np.array([[1, 3]]), np.array([[2.5, -100.0]])))
    # [[ 0.0e+00  2.5e+00  0.0e+00 -1.0e+09]]
    ```
    """
    logits = ops.cast(logits, "float32")
    batch_size = ops.shape(logits)[0]
    bias_ids = ops.convert_to_tensor(bias_ids, "int32")
    bias_values = ops.convert_to_tensor(bias_values, "float32")
    bias_ids = ops.broadcast_to(bias_ids,
                                (batch_size, ops.shape(bias_ids)[-1]))
    rows = ops.broadcast_to(ops.arange(batch_size, dtype="int32")[:, None],
                            ops.shape(bias_ids))
    indices = ops.reshape(ops.stack([rows, bias_ids], axis=-1), (-1, 2))
    added = ops.scatter(
        indices,
        ops.reshape(ops.broadcast_to(bias_values, ops.shape(bias_ids)), (-1,)),
        ops.shape(logits),
    )
    banned = ops.scatter(
        indices,
        ops.reshape(ops.cast(ops.broadcast_to(bias_values <= BAN_BIAS,
                                              ops.shape(bias_ids)), "float32"), (-1,)),
        ops.shape(logits),
    )
    return ops.where(banned > 0, BANNED_LOGIT, logits + added)


def logit_bias_pairs(owner, logit_bias, vocabulary_size=None):
    """`logit_bias` (`{token id: bias}`, ids as ints or digit strings) as
    sorted `((id, bias), ...)`, checked: at most `MAX_LOGIT_BIAS` entries,
    biases in [-100, 100], ids within `vocabulary_size` when given.

    Example:
    ```python
    from kgpt2.samplers.logits_processing import logit_bias_pairs

    print(logit_bias_pairs("demo", {"50256": -100, 13: 2}))  # ((13, 2.0), (50256, -100.0))
    ```
    """
    if logit_bias is None:
        return ()
    items = logit_bias.items() if isinstance(logit_bias, dict) else logit_bias
    pairs = {}
    for token, bias in items:
        text = str(token).strip()
        if isinstance(token, bool) or not text.isdigit():
            raise InputError(f"{owner}: logit_bias keys must be token ids (integers >= 0), "
                             f"got {token!r}.")
        token = int(text)
        if vocabulary_size is not None and token >= vocabulary_size:
            raise InputError(f"{owner}: logit_bias token id {token} is outside the "
                             f"vocabulary (0 to {vocabulary_size - 1}).")
        check_number(owner, f"logit_bias[{token}]", bias, minimum=BAN_BIAS, maximum=-BAN_BIAS)
        pairs[token] = float(bias)
    if len(pairs) > MAX_LOGIT_BIAS:
        raise InputError(f"{owner}: logit_bias holds {len(pairs)} entries; at most "
                         f"{MAX_LOGIT_BIAS}.")
    return tuple(sorted(pairs.items()))


def apply_min_new_tokens(logits, new_tokens, min_new_tokens, stop_token_ids):
    """Ban the stop tokens while a row has fewer than `min_new_tokens` new tokens.

    `new_tokens` (tokens generated so far) and `min_new_tokens` are scalars
    or `(batch,)`; `stop_token_ids` is a sequence of ids (usually
    `<|endoftext|>`). OpenAI's `min_tokens`, Hugging Face's
    `min_new_tokens`. Returns float32 logits.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.logits_processing import apply_min_new_tokens

    logits = np.zeros((2, 3), "float32")
    print(apply_min_new_tokens(logits, np.array([0, 2]), 2, (2,)))
    # [[ 0.e+00  0.e+00 -1.e+09]
    #  [ 0.e+00  0.e+00  0.e+00]]
    ```
    """
    logits = ops.cast(logits, "float32")
    vocab = ops.arange(ops.shape(logits)[-1], dtype="int32")[None, :]
    is_stop = ops.zeros_like(vocab, dtype="bool")
    for stop in stop_token_ids:  # a static loop over the few stop ids
        is_stop = ops.logical_or(is_stop, vocab == int(stop))
    early = per_row(new_tokens, "int32") < per_row(min_new_tokens, "int32")
    return ops.where(ops.logical_and(early, is_stop), BANNED_LOGIT, logits)


def banned_ngram_mask(token_ids, index, ngram_size, vocab_size):
    """Tokens that would complete an n-gram already in `token_ids[:, :index]`.

    The Hugging Face `no_repeat_ngram_size` rule: take the last
    `ngram_size - 1` tokens before `index`; every token that followed the
    same `ngram_size - 1` tokens earlier is banned. `ngram_size=1` bans every
    token present so far. `index` is a scalar or one per row. Returns a
    `(batch, vocab_size)` bool tensor.

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
    token_ids = ops.cast(token_ids, "int32")
    batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    num_windows = length - ngram_size + 1
    if num_windows < 1:
        return ops.zeros((batch_size, vocab_size), dtype="bool")
    index = per_row(index, "int32")
    # Window w is the n-gram at positions w .. w + ngram_size - 1; it counts
    # once it is fully written, and its last token is the candidate to ban.
    ends = ops.arange(num_windows, dtype="int32") + (ngram_size - 1)
    matches = ops.broadcast_to(ends[None, :] < index, (batch_size, num_windows))
    if ngram_size > 1:
        # The last ngram_size - 1 tokens before each row's index.
        where = index - (ngram_size - 1) + ops.arange(ngram_size - 1, dtype="int32")[None, :]
        where = ops.broadcast_to(ops.clip(where, 0, length - 1), (batch_size, ngram_size - 1))
        prefix = ops.take_along_axis(token_ids, where, axis=1)
        # A static loop over the n-gram length, not over tokens.
        for offset in range(ngram_size - 1):
            window = token_ids[:, offset : offset + num_windows]
            matches = ops.logical_and(
                matches, ops.equal(window, prefix[:, offset : offset + 1])
            )
    return tokens_to_vocab_mask(token_ids[:, ngram_size - 1 :], matches, vocab_size)


def apply_no_repeat_ngram(logits, token_ids, index, ngram_size, rows=True):
    """Set the logits `banned_ngram_mask` selects to `BANNED_LOGIT`.

    `rows` (bool, scalar or `(batch,)`) limits the rule to some rows, for a
    batch whose rows use different n-gram sizes. Returns float32 logits.

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
    banned = ops.logical_and(banned, ops.reshape(ops.convert_to_tensor(rows), (-1, 1)))
    return ops.where(banned, BANNED_LOGIT, logits)


def top_k_mask(logits, k, width):
    """Which tokens a top-`k` cut keeps: bool `(batch, vocab)`.

    Only the `width` (static) most likely tokens are sorted, so `k` (a
    scalar or one per row) must be at most `width`; a `k` of 0 keeps every
    token. Ties with the k-th logit are kept.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.logits_processing import top_k_mask

    logits = np.array([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0]], "float32")
    print(top_k_mask(logits, np.array([1, 0]), width=2))
    # [[False  True False]
    #  [ True  True  True]]
    ```
    """
    ordered, _ = ops.top_k(logits, width)  # (batch, width), descending
    k = ops.broadcast_to(per_row(k, "int32"), (ops.shape(logits)[0], 1))
    kth = ops.take_along_axis(ordered, ops.clip(k, 1, width) - 1, axis=1)
    return ops.logical_or(logits >= kth, k <= 0)


def apply_min_p(probabilities, min_p):
    """Zero every probability below `min_p` times the largest one (min-p).

    `min_p` is a scalar or one per row. The result is not renormalized:
    KerasHub's samplers sample with `categorical(log(p))`, which needs no
    normalization, and keeping the surviving values unchanged means a top-p
    cut made afterwards is the same as on the full distribution (min-p only
    removes the tail), matching the Hugging Face order temperature -> top-k
    -> top-p -> min-p.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.logits_processing import apply_min_p

    probabilities = np.array([[0.5, 0.3, 0.15, 0.05]], "float32")
    print(apply_min_p(probabilities, 0.5))  # [[0.5 0.3 0.  0. ]]
    ```
    """
    threshold = per_row(min_p) * ops.max(probabilities, axis=-1, keepdims=True)
    return ops.where(
        probabilities >= threshold, probabilities, ops.zeros_like(probabilities)
    )
