#!/usr/bin/env python3
"""Generation speed: kgpt2's fast path against KerasHub's, and what each change bought.

Protocol (issue 6): `gpt2_base_random` (GPT-2 124M's exact shape), the
4-token prompt [464, 2068, 7586, 21831] ("The quick brown fox"), 128 new
tokens, no early stop, greedy. Every variant is compiled first (its
first-call seconds include compiling), then all variants are called in turn,
round after round, in this one process, so that the load other processes
put on the machine hits them alike. Steady tokens/s is batch * new tokens
over the best (min) call and over the median call.

Variants (each a real, correct generation path; see `--variants`):
  keras_hub          `GPT2CausalLM.generate`'s compiled function (KerasHub's
                     `generate_step`: prefill over all max_length slots, one
                     stacked cache for all layers, keys/values slots-second).
  slots_second_full  kgpt2's loop with a per-layer (key, value) cache laid out
                     as KerasHub's (slots second, its `_compute_attention`)
                     and the prefill over the whole bucket.
  slots_second       ... and the prefill only over the prompt's bucket.
  slots_last_full    kgpt2's cache layout (slots last), prefill over the bucket.
  kgpt2              the default path: slots last, prompt-only prefill.

Run (from the repository root; takes minutes on 2 cores):
  PYTHONPATH=$PWD python benchmarks/generation_speed.py --batch-sizes 1,8 --rounds 5
  PYTHONPATH=$PWD python benchmarks/generation_speed.py --variants keras_hub,kgpt2 --json out.json
"""

import argparse
import contextlib
import dataclasses
import json
import platform
import statistics
import time

import numpy as np

PROMPT = [464, 2068, 7586, 21831]


# -- The "before" cache layout, kept here only to measure what changing it bought.
def _slots_second_empty_cache(backbone, batch_size, length, dtype=None):
    from keras import ops

    head_dim = backbone.hidden_dim // backbone.num_heads
    shape = (batch_size, length, backbone.num_heads, head_dim)
    dtype = dtype or backbone.compute_dtype
    return tuple(
        (ops.zeros(shape, dtype=dtype), ops.zeros(shape, dtype=dtype))
        for _ in range(backbone.num_layers)
    )


def _slots_second_forward(backbone, token_ids, cache, start, offset):
    from keras import ops

    batch_size, num_queries = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    cache_length = ops.shape(cache[0][0])[1]
    positions = ops.maximum(ops.arange(num_queries, dtype="int32") + (start - offset), 0)
    tokens = backbone.token_embedding(token_ids)
    x = backbone.embeddings_add(
        (tokens, backbone.position_embedding(tokens, positions=positions))
    )
    query_slots = ops.arange(num_queries, dtype="int32")[:, None] + start
    key_slots = ops.arange(cache_length, dtype="int32")[None, :]
    mask = ops.logical_and(key_slots <= query_slots, key_slots >= offset)
    mask = ops.broadcast_to(mask[None], (batch_size, num_queries, cache_length))
    new_cache = []
    for layer, (key_cache, value_cache) in zip(backbone.transformer_layers, cache):
        attention = layer._self_attention_layer
        residual = x
        h = layer._self_attention_layer_norm(x)
        query = attention._query_dense(h)
        key_cache = ops.slice_update(key_cache, (0, start, 0, 0), attention._key_dense(h))
        value_cache = ops.slice_update(
            value_cache, (0, start, 0, 0), attention._value_dense(h)
        )
        h, _ = attention._compute_attention(query, key_cache, value_cache, mask)
        x = attention._output_dense(h) + residual
        residual = x
        h = layer._feedforward_layer_norm(x)
        h = layer._feedforward_intermediate_dense(h)
        x = layer._feedforward_output_dense(h) + residual
        new_cache.append((key_cache, value_cache))
    return backbone.layer_norm(x), tuple(new_cache)


@contextlib.contextmanager
def _slots_second():
    """Trace generate_step with the slots-second cache (patching its globals)."""
    from kgpt2.generation import generate_step

    saved = generate_step.forward_with_cache, generate_step.empty_cache
    generate_step.forward_with_cache = _slots_second_forward
    generate_step.empty_cache = _slots_second_empty_cache
    try:
        yield
    finally:
        generate_step.forward_with_cache, generate_step.empty_cache = saved


def make_variant(name, lm, batch_size, new_tokens):
    """Return a no-argument callable that generates one batch as `name` does."""
    import keras_hub

    from kgpt2.generation.compiled import compiled_generate_function
    from kgpt2.generation.layout import layout_prompts

    max_length = len(PROMPT) + new_tokens
    if name == "keras_hub":
        lm.compile(sampler=keras_hub.samplers.GreedySampler())
        function = lm.make_generate_function()
        token_ids = np.zeros((batch_size, max_length), "int32")
        token_ids[:, : len(PROMPT)] = PROMPT
        inputs = {"token_ids": token_ids, "padding_mask": token_ids > 0}

        def run():
            return np.asarray(function(inputs, stop_token_ids=None)["token_ids"])

        return run
    # A sampler object per variant gives each its own compiled function.
    run_layout = compiled_generate_function(lm, keras_hub.samplers.GreedySampler())
    layout = layout_prompts(
        np.array([PROMPT] * batch_size), np.array([len(PROMPT)] * batch_size), max_length
    )
    if name.endswith("_full"):
        layout = dataclasses.replace(layout, prefill_length=layout.bucket)
    patch = _slots_second if name.startswith("slots_second") else contextlib.nullcontext

    def run():
        with patch():
            return layout.generated(run_layout(layout))

    return run


def machine():
    import jax
    import keras
    import keras_hub

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line)
    except (OSError, StopIteration):
        pass
    import os

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "backend": keras.config.backend(),
        "keras": keras.__version__,
        "keras_hub": keras_hub.__version__,
        "jax": jax.__version__,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpt2_base_random")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--variants", default="keras_hub,slots_second_full,slots_second,slots_last_full,kgpt2"
    )
    parser.add_argument("--json", help="write every figure to this file")
    args = parser.parse_args(argv)

    import kgpt2

    lm = kgpt2.load(args.preset)
    variants = args.variants.split(",")
    rows = []
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        runs, first, outputs = {}, {}, {}
        for name in variants:
            runs[name] = make_variant(name, lm, batch_size, args.new_tokens)
            start = time.perf_counter()
            outputs[name] = runs[name]()
            first[name] = time.perf_counter() - start
            print(f"batch {batch_size} {name}: first call {first[name]:.2f} s", flush=True)
        reference = outputs[variants[0]]
        calls = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name in variants:
                start = time.perf_counter()
                runs[name]()
                calls[name].append(time.perf_counter() - start)
        tokens = batch_size * args.new_tokens
        for name in variants:
            best, median = min(calls[name]), statistics.median(calls[name])
            rows.append({
                "variant": name,
                "batch": batch_size,
                "new_tokens": args.new_tokens,
                "first_call_s": round(first[name], 3),
                "best_call_s": round(best, 3),
                "median_call_s": round(median, 3),
                "best_tok_per_s": round(tokens / best, 2),
                "median_tok_per_s": round(tokens / median, 2),
                "calls_s": [round(c, 3) for c in calls[name]],
                "same_tokens_as_first_variant": bool(np.array_equal(outputs[name], reference)),
            })
    base = {row["batch"]: row for row in rows if row["variant"] == variants[0]}
    print(f"\n{'variant':18s} {'batch':>5s} {'first s':>8s} {'best tok/s':>11s} "
          f"{'median tok/s':>13s} {'x ' + variants[0]:>14s} same")
    for row in rows:
        ratio = base[row["batch"]]["best_call_s"] / row["best_call_s"]
        print(f"{row['variant']:18s} {row['batch']:5d} {row['first_call_s']:8.2f} "
              f"{row['best_tok_per_s']:11.1f} {row['median_tok_per_s']:13.1f} "
              f"{ratio:14.2f} {row['same_tokens_as_first_variant']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": machine(), "rows": rows, "args": vars(args)}, handle, indent=1)


if __name__ == "__main__":
    main()
