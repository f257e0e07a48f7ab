#!/usr/bin/env python3
"""Where one decode step's time goes, for kgpt2's path and KerasHub's.

Each piece of a GPT-2 decode step (one new token per row, cache of `--slots`
slots) is compiled on its own with the weights as arguments, and called
`--repeats` times in turn with the others; the table shows the best call
(least disturbed by other processes) in milliseconds, and what share of the
whole kgpt2 step each piece takes (the indented rows are parts of the
"12 transformer layers" row, times 12; "attention" includes the q/k/v/out
projections, so attention proper is the difference of those two rows).
Memory-bound pieces also show the GB/s they read (weights and cache).

Run (from the repository root):
  PYTHONPATH=$PWD python benchmarks/generation_profile.py --batch-sizes 1,8
"""

import argparse
import itertools
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpt2_base_random")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--slots", type=int, default=192, help="cache length (bucket)")
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import keras
    import keras_hub

    import kgpt2
    from kgpt2.generation.cached_forward import _attention_mask
    from kgpt2.generation.cached_forward import _cached_attention
    from kgpt2.generation.cached_forward import empty_cache
    from kgpt2.generation.cached_forward import forward_with_cache

    lm = kgpt2.load(args.preset)
    backbone = lm.backbone
    weights = [v.value for v in lm.trainable_variables]
    greedy = keras_hub.samplers.GreedySampler()
    layer0 = backbone.transformer_layers[0]
    start = args.slots // 2

    def compiled(function, donate_cache=False):
        def stateless(weights, *inputs):
            with keras.StatelessScope(state_mapping=zip(lm.trainable_variables, weights)):
                return function(*inputs)

        return jax.jit(stateless, donate_argnums=(2,) if donate_cache else ())

    def kgpt2_step(token_ids, cache):
        hidden, cache = forward_with_cache(backbone, token_ids, cache, start, 0)
        logits = backbone.token_embedding(hidden, reverse=True)[:, 0]
        return greedy.get_next_token(greedy.compute_probabilities(logits)), cache

    def layers_only(token_ids, cache):
        return forward_with_cache(backbone, token_ids, cache, start, 0)

    def attention_only(hidden, cache):
        mask = _attention_mask(1, args.slots, start, 0)
        key, value = cache[0]
        out, key, value = _cached_attention(
            layer0._self_attention_layer, hidden, key, value, start, mask
        )
        return out, ((key, value),) + tuple(cache[1:])

    def feedforward_only(hidden):
        x = layer0._feedforward_layer_norm(hidden)
        x = layer0._feedforward_intermediate_dense(x)
        return layer0._feedforward_output_dense(x)

    def qkv_and_output_projections(hidden):
        attention = layer0._self_attention_layer
        q = attention._query_dense(hidden)
        k = attention._key_dense(hidden)
        v = attention._value_dense(hidden)
        return attention._output_dense(q + k + v)

    def logits_only(hidden):
        return backbone.token_embedding(hidden, reverse=True)

    def sampler_only(logits):
        return greedy.get_next_token(greedy.compute_probabilities(logits))

    def keras_hub_step(token_ids, cache):
        logits, _, cache = lm.call_with_cache(token_ids, cache, start)
        return greedy.get_next_token(greedy.compute_probabilities(logits[:, 0])), cache

    dim = backbone.hidden_dim
    layer_bytes = (4 * dim * dim + 2 * dim * backbone.intermediate_dim) * 4
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        tokens = jnp.ones((batch_size, 1), "int32")
        hidden = jnp.ones((batch_size, 1, dim))
        logits = jnp.ones((batch_size, backbone.vocabulary_size))
        head_dim = dim // backbone.num_heads
        kh_cache = jnp.zeros(
            (batch_size, backbone.num_layers, 2, args.slots, backbone.num_heads, head_dim)
        )
        cache_bytes = 2 * batch_size * args.slots * dim * 4
        # name: (function, inputs, donated cache?, bytes read, times per step)
        pieces = {
            "kgpt2 step (12 layers + logits + argmax)": (
                compiled(kgpt2_step, True), [tokens, empty_cache(backbone, batch_size, args.slots)],
                True, None, 1),
            "keras_hub step (call_with_cache)": (
                compiled(keras_hub_step, True), [tokens, kh_cache], True, None, 1),
            "12 transformer layers (kgpt2 cache)": (
                compiled(layers_only, True), [tokens, empty_cache(backbone, batch_size, args.slots)],
                True, 12 * (layer_bytes + cache_bytes), 1),
            "  1 layer: q/k/v/out projections": (
                compiled(qkv_and_output_projections), [hidden], False, 4 * dim * dim * 4, 12),
            "  1 layer: feed-forward": (
                compiled(feedforward_only), [hidden], False,
                2 * dim * backbone.intermediate_dim * 4, 12),
            "  1 layer: attention (projections + cache)": (
                compiled(attention_only, True), [hidden, empty_cache(backbone, batch_size, args.slots)],
                True, 4 * dim * dim * 4 + cache_bytes, 12),
            "logits (x @ embeddings.T)": (
                compiled(logits_only), [hidden], False, backbone.vocabulary_size * dim * 4, 1),
            "greedy softmax + argmax": (compiled(sampler_only), [logits], False, None, 1),
        }
        best = {name: float("inf") for name in pieces}
        for name, (function, inputs, donated, _, _) in pieces.items():
            outputs = jax.block_until_ready(function(weights, *inputs))
            if donated:
                inputs[-1] = outputs[-1]
        for _, name in itertools.product(range(args.repeats), pieces):
            function, inputs, donated, _, _ = pieces[name]
            begin = time.perf_counter()
            outputs = jax.block_until_ready(function(weights, *inputs))
            best[name] = min(best[name], time.perf_counter() - begin)
            if donated:
                inputs[-1] = outputs[-1]
        whole = best["kgpt2 step (12 layers + logits + argmax)"]
        print(f"\nbatch {batch_size}, {args.slots} cache slots: best of {args.repeats} calls")
        print(f"{'piece':42s} {'ms':>8s} {'x per step':>10s} {'share':>7s} {'GB/s':>6s}")
        for name, (_, _, _, read, times) in pieces.items():
            seconds = best[name]
            rate = f"{read / seconds / 1e9:6.1f}" if read else "      "
            print(f"{name:42s} {seconds * 1e3:8.2f} {times:10d} "
                  f"{seconds * times / whole:7.0%} {rate}")


if __name__ == "__main__":
    main()
