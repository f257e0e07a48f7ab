#!/usr/bin/env python3
"""Compile cost of generation: first call, later calls with new shapes, a second process.

KerasHub compiles `generate` again for every new `max_length`
(and prompts are padded to it). kgpt2 buckets shapes and keeps compiled
programs on disk. This script runs, for KerasHub's `lm.generate` and for
`kgpt2.generation.generate_token_ids` (greedy, batch `--batch-size`):

  1. a first call (4-token prompt, 4 + `--new-tokens` tokens): compiling included;
  2. the same call again (steady);
  3. calls with other prompt lengths and max_length values (three in the
     first call's bucket, one in the bucket below);
  4. kgpt2 only: the first call again in a NEW process that shares the
     persistent compilation cache folder (a fresh temporary one; the first
     process fills it).

JAX's own events split each first call into tracing (Python), lowering and
XLA compiling, and count persistent-cache hits.

Run (from the repository root):
  PYTHONPATH=$PWD python benchmarks/generation_compile.py --batch-size 1
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from kgpt2.bench.settings import PROMPT_TOKEN_IDS

PROMPT = list(PROMPT_TOKEN_IDS)


def measure(args):
    """Run in a child process; print one JSON line of timings."""
    import jax
    import keras_hub
    import numpy as np

    import kgpt2
    from kgpt2.generation import generate_token_ids

    events = {}

    def on_duration(event, duration, **kwargs):
        events.setdefault(event.rsplit("/", 1)[-1], []).append(round(duration, 3))

    def on_event(event, **kwargs):
        events.setdefault(event.rsplit("/", 1)[-1], []).append(1)

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    lm = kgpt2.load(args.preset)
    batch = args.batch_size
    full = 4 + args.new_tokens
    # Same call twice, then other prompt lengths and max_length values: for
    # the default 132 the first three are in kgpt2's bucket 192, the last in 128.
    shapes = [(4, full), (4, full), (2, full - 3), (3, full + 28), (1, full + 58), (3, full - 9)]
    result = {"process": args.child, "calls": []}

    def timed(label, function):
        events.clear()
        start = time.perf_counter()
        function()
        seconds = time.perf_counter() - start
        result["calls"].append({"call": label, "seconds": round(seconds, 2), "jax_events": dict(events)})

    if args.child == "keras_hub":
        lm.compile(sampler=keras_hub.samplers.GreedySampler())
        function = lm.make_generate_function()
        for prompt_length, max_length in shapes:
            ids = np.zeros((batch, max_length), "int32")
            ids[:, :prompt_length] = PROMPT[:prompt_length]
            inputs = {"token_ids": ids, "padding_mask": ids > 0}
            timed(f"prompt {prompt_length}, max_length {max_length}",
                  lambda: np.asarray(function(inputs, stop_token_ids=None)["token_ids"]))
    else:
        sampler = keras_hub.samplers.GreedySampler()
        calls = shapes if args.child == "kgpt2" else shapes[:1]
        for prompt_length, max_length in calls:
            ids = np.array([PROMPT[:prompt_length]] * batch)
            timed(f"prompt {prompt_length}, max_length {max_length}",
                  lambda: generate_token_ids(lm, ids, max_length, sampler=sampler))
    print("RESULT " + json.dumps(result), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpt2_base_random")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return measure(args)

    cache = tempfile.mkdtemp(prefix="kgpt2-compile-bench-")
    env = dict(os.environ, KGPT2_COMPILATION_CACHE=cache)
    results = []
    for child in ["keras_hub", "kgpt2", "kgpt2_second_process"]:
        command = [sys.executable, __file__, "--child", child, "--preset", args.preset,
                   "--batch-size", str(args.batch_size), "--new-tokens", str(args.new_tokens)]
        run = subprocess.run(command, env=env, capture_output=True, text=True)
        lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
        if run.returncode or not lines:
            sys.exit(f"{child} failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}")
        results.append(json.loads(lines[-1][len("RESULT "):]))
    for result in results:
        print(f"\n{result['process']}")
        for call in result["calls"]:
            events = call["jax_events"]
            split = ", ".join(
                f"{name.replace('_duration', '')} {sum(values):.1f} s"
                for name, values in events.items() if name.endswith("_duration")
            )
            hits = len(events.get("cache_hits", []))
            print(f"  {call['call']:28s} {call['seconds']:7.2f} s   {split}"
                  + (f"   persistent-cache hits: {hits}" if hits else ""))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=1)


if __name__ == "__main__":
    main()
