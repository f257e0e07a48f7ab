"""Check `kgpt2.plan` against measured peak memory of real training steps.

    PYTHONPATH=. python benchmarks/plan_memory.py            # full set (~15 min on 2 cores)
    PYTHONPATH=. python benchmarks/plan_memory.py --quick    # gpt2_tiny_random only
    PYTHONPATH=. python benchmarks/plan_memory.py --processes  # the two-process layouts only

For every configuration, two fresh processes run the same Keras training
step (JAX backend, Adam, `GPT2CausalLM.train_on_batch` on random token ids):

1. "compile" fills a private JAX persistent compilation cache and records
   XLA's own buffer plan for the step (`compiled.memory_analysis()`:
   arguments + outputs - donated aliases + temporaries).
2. "measure" starts fresh, records its resident memory (VmRSS) once Keras,
   KerasHub and JAX are imported and initialised, resets the kernel's
   high-water mark (`/proc/self/clear_refs`), builds the model, and runs
   three steps with the executable loaded from the cache, so XLA's compiler
   memory is not counted. Measured = VmHWM, the whole process's peak: the
   framework (the baseline), weights, Adam state, activations and XLA
   temporaries, plus what Keras' Python objects and the loaded executable
   take. "above baseline" is VmHWM - baseline.

A configuration with `processes` runs each phase as a group of that many
processes (one CPU device each, Gloo on 127.0.0.1, `kgpt2.connect_processes`)
under its `distribution`, each process feeding its part of the batch
(data_parallel) or all of it (model_parallel); measured is the worst
process's peak, compared with the plan's `process_bytes`.

The error is (estimate - measured) / measured; the plan counts the runtime
(`kgpt2.training.memory_plan.runtime_bytes`), so it should be 0% to +20%. Mixed precision runs in
bfloat16, which this CPU emulates partly in float32, so its activations
measure larger than on an accelerator.
"""

import argparse
import json
import os
import pathlib
import tempfile

from process_group import run_group

STEPS = 3

QUICK = [
    dict(preset="gpt2_tiny_random", batch_size=8, sequence_length=128),
    dict(preset="gpt2_tiny_random", batch_size=2, sequence_length=512),
    dict(preset="gpt2_tiny_random", batch_size=8, sequence_length=128, lora_rank=8),
    dict(preset="gpt2_tiny_random", batch_size=8, sequence_length=128, mixed_precision=True),
    dict(preset="gpt2_tiny_random", batch_size=8, sequence_length=128,
         gradient_accumulation_steps=4),
]
FULL = QUICK + [
    dict(preset="gpt2_base_random", batch_size=1, sequence_length=128),
    dict(preset="gpt2_base_random", batch_size=4, sequence_length=128),
    dict(preset="gpt2_base_random", batch_size=2, sequence_length=512),
    dict(preset="gpt2_base_random", batch_size=4, sequence_length=128, lora_rank=8),
    dict(preset="gpt2_base_random", batch_size=4, sequence_length=128, mixed_precision=True),
    dict(preset="gpt2_base_random", batch_size=4, sequence_length=128,
         gradient_accumulation_steps=2),
]
PROCESSES = [
    dict(preset="gpt2_base_random", batch_size=4, sequence_length=128,
         devices=2, processes=2, distribution="data_parallel"),
    dict(preset="gpt2_base_random", batch_size=4, sequence_length=128,
         devices=2, processes=2, distribution="model_parallel"),
]
FULL += PROCESSES


def _rss_kib(field):
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _release_free_heap():
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def _build(config):
    """The model, optimizer and one micro-batch of `config`, in plain Keras."""
    import keras
    import keras_hub
    import numpy as np

    from kgpt2.presets.catalog import backbone_config
    from kgpt2.presets.gpt2_layout import get_distribution

    if config.get("mixed_precision"):
        keras.config.set_dtype_policy("mixed_bfloat16")
    if config.get("distribution"):
        keras.distribution.set_distribution(
            get_distribution(config["distribution"], backbone_config(config["preset"])))
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(**backbone_config(config["preset"]))
    if config.get("lora_rank"):
        backbone.enable_lora(config["lora_rank"])
    lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    steps = config.get("gradient_accumulation_steps", 1)
    lm.compile(
        optimizer=keras.optimizers.Adam(
            1e-4, gradient_accumulation_steps=steps if steps > 1 else None),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    micro_batch = config["batch_size"] // steps
    if config.get("distribution") == "data_parallel":
        micro_batch //= config.get("processes", 1)  # this process's rows
    shape = (micro_batch, config["sequence_length"])
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50257, size=(shape[0], shape[1] + 1), dtype="int32")
    x = {"token_ids": tokens[:, :-1], "padding_mask": np.ones(shape, "int32")}
    return lm, (x, tokens[:, 1:], np.ones(shape, "float32"))


def _use_cache(cache_dir):
    import jax

    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _join(config, process_id, coordinator):
    if config.get("processes", 1) > 1:
        import kgpt2

        kgpt2.connect_processes(config["processes"], process_id, coordinator)


def child_compile(config, cache_dir, process_id=0, coordinator=None):
    import jax

    _join(config, process_id, coordinator)
    _use_cache(cache_dir)
    lm, data = _build(config)
    lm.train_on_batch(*data)
    state = lm._get_jax_state(True, True, True, True)  # what fit passes to jit
    stats = (jax.jit(lm.train_step, donate_argnums=0)
             .lower(state, data).compile().memory_analysis())
    return {"xla_bytes": stats.argument_size_in_bytes + stats.output_size_in_bytes
            - stats.alias_size_in_bytes + stats.temp_size_in_bytes}


def child_measure(config, cache_dir, process_id=0, coordinator=None):
    import time

    _join(config, process_id, coordinator)
    import jax.numpy as jnp
    import keras  # noqa: F401
    import keras_hub  # noqa: F401

    import kgpt2  # noqa: F401

    _use_cache(cache_dir)
    jnp.ones(8).block_until_ready()  # start the CPU client and its threads
    entries_before = len(os.listdir(cache_dir))
    _release_free_heap()
    baseline = _rss_kib("VmRSS")
    pathlib.Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM
    lm, data = _build(config)
    start = time.perf_counter()
    for _ in range(STEPS):
        logs = lm.train_on_batch(*data, return_dict=True)
    seconds = time.perf_counter() - start
    return {
        "measured_bytes": _rss_kib("VmHWM") * 1024,
        "above_baseline_bytes": (_rss_kib("VmHWM") - baseline) * 1024,
        "baseline_bytes": baseline * 1024,
        "cache_hit": len(os.listdir(cache_dir)) == entries_before,
        "seconds": seconds,
        "loss": float(logs["loss"]),
    }


def _run_child(phase, config, cache_dir):
    """Run `phase` in fresh processes (a group for `processes`); return the worst one's result."""
    results = run_group(__file__, [phase, json.dumps(config), cache_dir], config.get("processes", 1))
    if phase == "compile":
        return results[0]
    worst = max(results, key=lambda result: result["measured_bytes"])
    return dict(worst, cache_hit=all(result["cache_hit"] for result in results))


def _label(config):
    parts = [f"{config['preset']} {config['batch_size']}x{config['sequence_length']}"]
    if config.get("lora_rank"):
        parts.append(f"LoRA {config['lora_rank']}")
    if config.get("mixed_precision"):
        parts.append("bf16")
    if config.get("gradient_accumulation_steps", 1) > 1:
        parts.append(f"accum {config['gradient_accumulation_steps']}")
    if config.get("processes", 1) > 1:
        parts.append(f"{config['distribution'].split('_')[0]} x{config['processes']} proc")
    return ", ".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="gpt2_tiny_random only")
    parser.add_argument("--processes", action="store_true", help="the two-process layouts only")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        phase, config, cache_dir, process_id, coordinator = args.child
        run = child_compile if phase == "compile" else child_measure
        result = run(json.loads(config), cache_dir, int(process_id), coordinator)
        print("RESULT " + json.dumps(result), flush=True)
        return

    import kgpt2

    mib = 2**20
    print(f"{'configuration':<44} {'plan MiB':>9} {'measured':>9} {'baseline':>9} "
          f"{'XLA plan':>9} {'error':>7}  cache")
    rows = []
    for config in QUICK if args.quick else PROCESSES if args.processes else FULL:
        estimate = kgpt2.plan(**config)
        with tempfile.TemporaryDirectory(prefix="kgpt2-plan-cache-") as cache_dir:
            compiled = _run_child("compile", config, cache_dir)
            measured = _run_child("measure", config, cache_dir)
        # One device per process: the process holds its device's buffers.
        error = estimate.process_bytes / measured["measured_bytes"] - 1
        rows.append(dict(config, label=_label(config), plan_bytes=estimate.process_bytes,
                         buffer_bytes=estimate.total_bytes - estimate.runtime_bytes,
                         **compiled, **measured, error=error))
        print(f"{_label(config):<44} {estimate.process_bytes / mib:>9.0f} "
              f"{measured['measured_bytes'] / mib:>9.0f} {measured['baseline_bytes'] / mib:>9.0f} "
              f"{compiled['xla_bytes'] / mib:>9.0f} "
              f"{error:>+7.1%}  {'hit' if measured['cache_hit'] else 'MISS'}", flush=True)
    errors = [row["error"] for row in rows]
    print(f"\nvs measured: from {min(errors):+.1%} to {max(errors):+.1%}, "
          f"mean {sum(errors) / len(errors):+.1%} (target: 0% to +20%)")
    # XLA plans the step's buffers only: compare the plan without its runtime.
    errors = [abs(row["buffer_bytes"] / row["xla_bytes"] - 1) for row in rows]
    print(f"buffers vs XLA plan: mean |error| {sum(errors) / len(errors):.1%}, "
          f"worst {max(errors):.1%}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
