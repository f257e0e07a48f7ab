"""`generate_token_ids`: the fast, low-level generation path (ids in, ids out).

Example:
```python
import numpy as np
import kgpt2
from kgpt2.generation import generate_token_ids

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
prompt = np.array([[464, 2068, 7586, 21831]] * 2)  # "The quick brown fox"
ids = generate_token_ids(lm, prompt, max_length=12, sampler="greedy")
# The prompt, then 8 new tokens per row.
print(ids.shape)  # (2, 12)
```
"""

import numpy as np

from kgpt2.checks import check_token_ids
from kgpt2.checks import shown_name
from kgpt2.errors import InputError
from kgpt2.generation.compiled import compiled_generate_function
from kgpt2.generation.layout import layout_prompts
from kgpt2.generation.sampler_lookup import resolve_sampler


def model_max_length(lm):
    """The most tokens `lm` can hold: its position embedding's size."""
    return int(lm.backbone.max_sequence_length)


def _check_prompts(token_ids, prompt_lengths, max_length, limit):
    if token_ids.ndim != 2 or token_ids.shape[0] < 1 or token_ids.shape[1] < 1:
        raise InputError(
            "token_ids must be a (batch, prompt_length) integer array with at "
            f"least one row and one column, got shape {token_ids.shape}."
        )
    if not np.issubdtype(token_ids.dtype, np.integer):
        raise InputError(f"token_ids must be integers, got dtype {token_ids.dtype}.")
    lengths = (
        np.full(token_ids.shape[0], token_ids.shape[1])
        if prompt_lengths is None
        else np.asarray(prompt_lengths)
    )
    if lengths.shape != (token_ids.shape[0],):
        raise InputError(
            f"prompt_lengths must have one entry per row ({token_ids.shape[0]}), "
            f"got shape {lengths.shape}."
        )
    if lengths.min() < 1 or lengths.max() > token_ids.shape[1]:
        raise InputError(
            f"prompt_lengths must be between 1 and {token_ids.shape[1]} (the "
            f"array's width), got {lengths.tolist()}."
        )
    name = shown_name("max_length")  # the flag, on the command line
    if not isinstance(max_length, (int, np.integer)) or isinstance(max_length, bool):
        raise InputError(f"{name} must be an integer, got {max_length!r}.")
    if max_length > limit:
        raise InputError(f"{name}={max_length} is more than the model's {limit} positions.")
    if max_length < lengths.max():
        raise InputError(
            f"max_length={max_length} is shorter than the longest prompt "
            f"({lengths.max()} tokens); max_length counts the prompt too."
        )
    return lengths


def _cut_after_stop(token_ids, lengths, stop_token_ids):
    """Fill each row after its first generated stop token with that token.

    The sampler stops when every row has stopped, so rows that stopped
    earlier hold leftover tokens after their stop token.
    """
    stop = np.isin(token_ids, stop_token_ids)
    stop &= np.arange(token_ids.shape[1])[None, :] >= lengths[:, None]
    for row in np.flatnonzero(stop.any(axis=1)):
        first = np.argmax(stop[row])
        token_ids[row, first + 1 :] = token_ids[row, first]
    return token_ids


def generate_token_ids(
    lm,
    token_ids,
    max_length,
    sampler=None,
    stop_token_ids=None,
    prompt_lengths=None,
):
    """Generate continuations of prompts given as token ids.

    Shapes are bucketed (see `kgpt2.generation.buckets`), so calls with other
    prompt lengths or `max_length` values reuse compiled programs.

    Args:
        lm: a `keras_hub.models.GPT2CausalLM`.
        token_ids: int array `(batch, prompt_length)`.
        max_length: total length of each output row, prompt included.
        sampler: None (the sampler `lm` was compiled with), a name
            (`greedy`, `top_k`, ...), or a `keras_hub.samplers.Sampler`.
        stop_token_ids: None (generate to `max_length`) or ids that end a
            row; generation stops once every row has produced one, and a
            row's slots after its first stop token repeat that token.
        prompt_lengths: optional per-row prompt lengths for ragged prompts
            (`token_ids[i, :prompt_lengths[i]]`); default: the full width.

    Returns:
        A numpy int32 array `(batch, max_length)`.
    """
    token_ids = np.asarray(token_ids)
    lengths = _check_prompts(token_ids, prompt_lengths, max_length, model_max_length(lm))
    vocabulary_size = lm.backbone.vocabulary_size
    if token_ids.min() < 0 or token_ids.max() >= vocabulary_size:
        bad = token_ids[(token_ids < 0) | (token_ids >= vocabulary_size)][0]
        raise InputError(
            f"generate_token_ids: token_ids must be from 0 to {vocabulary_size - 1} "
            f"(the model's vocabulary), got {int(bad)}."
        )
    sampler = resolve_sampler(lm, sampler)
    if stop_token_ids is not None:
        stop_token_ids = check_token_ids(
            "generate_token_ids", "stop_token_ids", stop_token_ids,
            lm.backbone.vocabulary_size,
        )
    layout = layout_prompts(token_ids, lengths, int(max_length))
    run = compiled_generate_function(lm, sampler)
    output = layout.generated(run(layout, stop_token_ids=stop_token_ids)).copy()
    if stop_token_ids:
        output = _cut_after_stop(output, lengths, stop_token_ids)
    return output.astype("int32")
