"""GPT-2's forward pass over a key/value cache kept as one (key, value) pair per layer.

KerasHub's `GPT2CausalLM.call_with_cache` keeps the cache of all layers in one
tensor `(batch, num_layers, 2, length, heads, head_dim)`: every decode step
slices it per layer, re-stacks key and value inside each attention layer, and
re-stacks all layers at the end, copying the whole cache several times per
token. Here the cache is a tuple pytree with separate key and value tensors
per layer, updated in place with one `slice_update` each, so a step only
writes the new token's keys and values. Everything else reuses the backbone's
own layers (embeddings, layer norms, dense projections, the attention
layer's masked softmax), so the weights and numerics are KerasHub's.

Positions are counted from `offset`: cache slots before `offset` are unused
(the prompt is right-aligned to a bucketed length, see `kgpt2.generation.
buckets`) and no query attends to them.

Example:
```python
import numpy as np
import kgpt2
from kgpt2.generation.cached_forward import empty_cache, forward_with_cache

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
cache = empty_cache(lm.backbone, batch_size=1, length=16)
token_ids = np.array([[464, 2068, 7586, 21831]], "int32")
hidden, cache = forward_with_cache(lm.backbone, token_ids, cache, start=0, offset=0)
print(hidden.shape)  # (1, 4, 64)
```
"""

from keras import ops


def empty_cache(backbone, batch_size, length, dtype=None):
    """Return a zero cache: a tuple of `(key, value)` pairs, one per layer.

    Each tensor has shape `(batch_size, num_heads, head_dim, length)`, slots
    last: the layout both attention products read as they are (with slots
    second, as KerasHub has them, XLA made a transposed copy of every
    layer's cache for every token).
    """
    head_dim = backbone.hidden_dim // backbone.num_heads
    shape = (batch_size, backbone.num_heads, head_dim, length)
    dtype = dtype or backbone.compute_dtype
    return tuple(
        (ops.zeros(shape, dtype=dtype), ops.zeros(shape, dtype=dtype))
        for _ in range(backbone.num_layers)
    )


def cache_slots(cache):
    """Return how many token slots a cache from `empty_cache` has (its last axis)."""
    return ops.shape(cache[0][0])[-1]


def _attention_mask(num_queries, cache_length, start, offset):
    """Query `i` (at slot `start + i`) sees key slots in `[offset, start + i]`."""
    query_slots = ops.arange(num_queries, dtype="int32")[:, None] + start
    key_slots = ops.arange(cache_length, dtype="int32")[None, :]
    mask = ops.logical_and(key_slots <= query_slots, key_slots >= offset)
    return mask[None, None]  # (1, 1, queries, slots): all rows and heads.


def _write(cache, update, start):
    """Write `update` `(batch, T, heads, head_dim)` at slots `[start, start + T)`.

    `start` is one slot for all rows, or (with `T == 1`) a `(batch,)` vector
    of each row's own slot, as `forward_rows` uses.
    """
    if len(getattr(start, "shape", ())) == 1:
        return _write_rows(cache, update, start)
    return ops.slice_update(cache, (0, 0, 0, start), ops.transpose(update, (0, 2, 3, 1)))


def _write_rows(cache, update, slots):
    """Write each row's one new key/value `(batch, 1, heads, head_dim)` at its slot."""
    batch_size, num_heads, head_dim, _ = ops.shape(cache)
    grid = ops.meshgrid(
        ops.arange(batch_size, dtype="int32"),
        ops.arange(num_heads, dtype="int32"),
        ops.arange(head_dim, dtype="int32"),
        indexing="ij",
    )
    row_slots = ops.broadcast_to(ops.cast(slots, "int32")[:, None, None], grid[0].shape)
    indices = ops.reshape(ops.stack([*grid, row_slots], axis=-1), (-1, 4))
    values = ops.reshape(ops.cast(update, cache.dtype), (-1,))
    return ops.scatter_update(cache, indices, values)


def _cached_attention(attention, x, key_cache, value_cache, start, mask):
    """`CachedMultiHeadAttention` on `x`, with the cache in our layout."""
    query = attention._query_dense(x)  # (batch, T, heads, head_dim)
    query = query * ops.cast(attention._inverse_sqrt_key_dim, query.dtype)
    key_cache = _write(key_cache, attention._key_dense(x), start)
    value_cache = _write(value_cache, attention._value_dense(x), start)
    scores = ops.einsum("bthd,bhdl->bhtl", query, key_cache)
    weights = attention._masked_softmax(scores, mask)
    output = ops.einsum("bhtl,bhdl->bthd", weights, value_cache)
    return attention._output_dense(output), key_cache, value_cache


def _decoder_layer(layer, x, key_cache, value_cache, start, mask):
    """One `TransformerDecoder` (pre-norm, as GPT-2) with a cached attention."""
    residual = x
    x, key_cache, value_cache = _cached_attention(
        layer._self_attention_layer,
        layer._self_attention_layer_norm(x),
        key_cache,
        value_cache,
        start,
        mask,
    )
    x = x + residual
    residual = x
    x = layer._feedforward_layer_norm(x)
    x = layer._feedforward_intermediate_dense(x)
    x = layer._feedforward_output_dense(x) + residual
    return x, key_cache, value_cache


def forward_with_cache(backbone, token_ids, cache, start, offset):
    """Run `token_ids` at cache slots `[start, start + T)` of `cache`.

    Args:
        backbone: a `keras_hub.models.GPT2Backbone`.
        token_ids: int tensor `(batch, T)`.
        cache: from `empty_cache` (or a previous call).
        start: int scalar (may be traced): the slot of `token_ids[:, 0]`.
        offset: int scalar (may be traced): the slot of position 0. Slots
            before it are unused; their position ids are clipped to 0.

    Returns:
        `(hidden_states, cache)`: the final layer-normed hidden states
        `(batch, T, hidden_dim)` and the updated cache.
    """
    num_queries = ops.shape(token_ids)[1]
    cache_length = cache_slots(cache)
    positions = ops.maximum(ops.arange(num_queries, dtype="int32") + (start - offset), 0)
    tokens = backbone.token_embedding(token_ids)
    x = backbone.embeddings_add(
        (tokens, backbone.position_embedding(tokens, positions=positions))
    )
    mask = _attention_mask(num_queries, cache_length, start, offset)
    new_cache = []
    for layer, (key_cache, value_cache) in zip(backbone.transformer_layers, cache):
        x, key_cache, value_cache = _decoder_layer(
            layer, x, key_cache, value_cache, start, mask
        )
        new_cache.append((key_cache, value_cache))
    return backbone.layer_norm(x), tuple(new_cache)


def forward_rows(backbone, token_ids, cache, positions):
    """Run one token per row, each row at its own position (continuous batching).

    Row `b`'s token sits at cache slot `positions[b]` (slot == position: rows
    are left-aligned) and attends to its slots `[0, positions[b]]`; slots
    after it may hold a previous occupant's keys and are never read.

    Args:
        backbone: a `keras_hub.models.GPT2Backbone`.
        token_ids: int tensor `(batch,)`.
        cache: from `empty_cache`, `(batch, heads, head_dim, length)` per layer.
        positions: int tensor `(batch,)`, each `< length`.

    Returns:
        `(hidden_states, cache)`: `(batch, hidden_dim)` and the updated cache.

    Example:
    ```python
    import numpy as np
    import kgpt2
    from kgpt2.generation.cached_forward import empty_cache, forward_rows

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    cache = empty_cache(lm.backbone, batch_size=2, length=16)
    hidden, cache = forward_rows(lm.backbone, np.array([464, 2068]), cache,
                                 positions=np.array([0, 0]))
    print(hidden.shape)  # (2, 64)
    ```
    """
    positions = ops.cast(positions, "int32")
    cache_length = ops.shape(cache[0][0])[-1]
    tokens = backbone.token_embedding(ops.cast(token_ids, "int32")[:, None])
    x = backbone.embeddings_add(
        (tokens, backbone.position_embedding(tokens, positions=positions[:, None]))
    )
    key_slots = ops.arange(cache_length, dtype="int32")[None, :]
    mask = (key_slots <= positions[:, None])[:, None, None, :]
    new_cache = []
    for layer, (key_cache, value_cache) in zip(backbone.transformer_layers, cache):
        x, key_cache, value_cache = _decoder_layer(
            layer, x, key_cache, value_cache, positions, mask
        )
        new_cache.append((key_cache, value_cache))
    return ops.squeeze(backbone.layer_norm(x), axis=1), tuple(new_cache)
