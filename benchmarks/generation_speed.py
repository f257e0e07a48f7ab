#!/usr/bin/env python3
"""Generation speed: kgpt2's fast path against KerasHub's, and what each change bought.

Protocol (`kgpt2 bench`'s): `gpt2_base_random` (GPT-2 124M's exact shape), the
4-token prompt [464, 2068, 7586, 21831] ("The quick brown fox"), 128 new
tokens, no early stop, greedy. Every variant is compiled first (its
first-call seconds include compiling), then all variants are called in turn,
round after round, in this one process, so that the load other processes
put on the machine hits them alike. Steady tokens/s is batch * new tokens
over the best (min) call and over the median call. For kgpt2's and
KerasHub's default paths alone, `kgpt2 bench --impl kgpt2,keras_hub` measures
the same; this script adds the intermediate variants.

Variants (each a real, correct generation path; see `--variants`):
  keras_hub          `GPT2CausalLM.generate`'s compiled function (KerasHub's
                     `generate_step`: prefill over all max_length slots, one
                     stacked cache for all layers, keys/values slots-second).
  slots_second_full  kgpt2's loop and forward pass with the per-layer
                     (key, value) cache laid out as KerasHub's (slots second,
                     its `_compute_attention`) and the prefill over the whole bucket.
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
import statistics
import time

import keras_hub
import numpy as np
from keras import ops

import kgpt2
from kgpt2.bench.machine import machine_info
from kgpt2.bench.settings import PROMPT_TOKEN_IDS
from kgpt2.generation import cached_forward
from kgpt2.generation import generate_step
from kgpt2.generation.bucketed_prompts import bucket_prompts
from kgpt2.generation.compiled import compiled_generate_function

PROMPT = list(PROMPT_TOKEN_IDS)


# -- The "before" cache layout, kept here only to measure what changing it
# bought. Everything else (embeddings, decoder layers, the loop) is kgpt2's.
def _slots_second_empty_cache(backbone, batch_size, length, dtype=None):
    head_dim = backbone.hidden_dim // backbone.num_heads
    shape = (batch_size, length, backbone.num_heads, head_dim)
    dtype = dtype or backbone.compute_dtype
    return tuple(
        (ops.zeros(shape, dtype=dtype), ops.zeros(shape, dtype=dtype))
        for _ in range(backbone.num_layers)
    )


def _slots_second_slots(cache):
    return ops.shape(cache[0][0])[1]


def _slots_second_attention(attention, x, key_cache, value_cache, start, mask):
    """KerasHub's attention over a slots-second cache (`_compute_attention`)."""
    query = attention._query_dense(x)
    key_cache = ops.slice_update(key_cache, (0, start, 0, 0), attention._key_dense(x))
    value_cache = ops.slice_update(value_cache, (0, start, 0, 0), attention._value_dense(x))
    output, _ = attention._compute_attention(query, key_cache, value_cache, mask)
    return attention._output_dense(output), key_cache, value_cache


@contextlib.contextmanager
def _slots_second():
    """Trace generate_step with the slots-second cache (patching module globals)."""
    patches = [
        (generate_step, "empty_cache", _slots_second_empty_cache),
        (cached_forward, "cache_slots", _slots_second_slots),
        (cached_forward, "_cached_attention", _slots_second_attention),
    ]
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
    for module, name, value in patches:
        setattr(module, name, value)
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def make_variant(name, lm, batch_size, new_tokens):
    """Return a no-argument callable that generates one batch as `name` does."""
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
    run_bucketed = compiled_generate_function(lm, keras_hub.samplers.GreedySampler())
    bucketed = bucket_prompts(
        np.array([PROMPT] * batch_size), np.array([len(PROMPT)] * batch_size), max_length
    )
    if name.endswith("_full"):
        bucketed = dataclasses.replace(bucketed, prefill_length=bucketed.bucket)
    patch = _slots_second if name.startswith("slots_second") else contextlib.nullcontext

    def run():
        with patch():
            return bucketed.generated(run_bucketed(bucketed))

    return run


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
            json.dump({"machine": machine_info(bandwidth=False), "rows": rows, "args": vars(args)}, handle, indent=1)


if __name__ == "__main__":
    main()
