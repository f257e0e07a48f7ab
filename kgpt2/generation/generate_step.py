"""The compilable generation function: one pass over the prompt, then a sampler's loop.

It has `GPT2CausalLM.generate_step`'s contract with the sampler (`next`,
`prompt`, `cache`, `index`, `mask`, `stop_token_ids`, `hidden_states`,
`model`), so every `keras_hub.samplers.Sampler` (and every `kgpt2.samplers`
one) runs inside it unchanged. What differs is speed: the prompt pass covers
only the prompt's bucket rather than all `max_length` slots, and the cache is
one key/value pair per layer (see `cached_forward`).

Example:
```python
import keras_hub, numpy as np, kgpt2
from kgpt2.generation.generate_step import generate_step
from kgpt2.generation.bucketed_prompts import bucket_prompts

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
bucketed = bucket_prompts(np.array([[464, 2068]]), np.array([2]), max_length=8)
out = generate_step(lm, keras_hub.samplers.GreedySampler(), bucketed.prompt,
                    bucketed.mask, bucketed.offset, bucketed.index,
                    bucketed.prefill_length)
print(bucketed.generated(out).shape)  # (1, 8)
```
"""

from keras import ops

from kgpt2.generation.cached_forward import empty_cache
from kgpt2.generation.cached_forward import forward_with_cache


def _prefill(backbone, prompt, offset, prefill_length):
    """Fill the cache and hidden states for slots `[offset, offset + prefill_length)`.

    Returns the cache and `(batch, bucket, hidden_dim)` hidden states where the
    unused slots before `offset` repeat slot `offset`'s state (so similarity
    maxima, as in contrastive search, are unchanged by them).
    """
    batch_size, bucket = ops.shape(prompt)[0], ops.shape(prompt)[1]
    # Near the end of a short bucket the window would overrun; slide it left
    # over unused slots instead (their outputs are never attended to).
    start = ops.minimum(offset, bucket - prefill_length)
    window = ops.slice(prompt, (0, start), (batch_size, prefill_length))
    cache = empty_cache(backbone, batch_size, bucket)
    hidden, cache = forward_with_cache(backbone, window, cache, start, offset)
    hidden_states = ops.zeros(
        (batch_size, bucket, backbone.hidden_dim), dtype=hidden.dtype
    )
    hidden_states = ops.slice_update(hidden_states, (0, start, 0), hidden)
    first = ops.slice(hidden_states, (0, offset, 0), (batch_size, 1, backbone.hidden_dim))
    unused = (ops.arange(bucket, dtype="int32") < offset)[None, :, None]
    return cache, ops.where(unused, first, hidden_states)


def generate_step(
    lm,
    sampler,
    prompt,
    mask,
    offset,
    index,
    prefill_length,
    stop_token_ids=None,
):
    """Generate into `prompt` (prompts right-aligned in a bucket) and return it.

    Args:
        lm: a `GPT2CausalLM`.
        sampler: a `keras_hub.samplers.Sampler`.
        prompt, mask: `(batch, bucket)` token ids and "given token" mask.
        offset: slot of position 0 (int scalar, may be traced).
        index: first slot to generate (int scalar, may be traced).
        prefill_length: static int, slots computed before the loop.
        stop_token_ids: static tuple of ids, or None to never stop early.
    """
    backbone = lm.backbone
    cache, hidden_states = _prefill(backbone, prompt, offset, prefill_length)

    def next(prompt, cache, index):
        start = index - 1
        token_ids = ops.slice(prompt, (0, start), (ops.shape(prompt)[0], 1))
        hidden, cache = forward_with_cache(backbone, token_ids, cache, start, offset)
        logits = backbone.token_embedding(hidden, reverse=True)
        return ops.squeeze(logits, axis=1), ops.squeeze(hidden, axis=1), cache

    return sampler(
        next=next,
        prompt=prompt,
        cache=cache,
        index=index,
        mask=mask,
        stop_token_ids=stop_token_ids,
        hidden_states=hidden_states,
        model=lm,
    )
