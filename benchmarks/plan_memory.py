"""Check `kgpt2.plan` against measured peak memory of real training steps.

    PYTHONPATH=. python benchmarks/plan_memory.py            # full set (~15 min on 2 cores)
    PYTHONPATH=. python benchmarks/plan_memory.py --quick    # gpt2_tiny_random only

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

The error is (estimate - measured) / measured; the plan counts the runtime
(`kgpt2.training.memory_plan.runtime_bytes`), so it should be 0% to +20%. Mixed precision runs in
bfloat16, which this CPU emulates partly in float32, so its activations
measure larger than on an accelerator.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
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

    if config.get("mixed_precision"):
        keras.config.set_dtype_policy("mixed_bfloat16")
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


def child_compile(config, cache_dir):
    import jax

    _use_cache(cache_dir)
    lm, data = _build(config)
    lm.train_on_batch(*data)
    state = lm._get_jax_state(True, True, True, True)  # what fit passes to jit
    stats = (jax.jit(lm.train_step, donate_argnums=0)
             .lower(state, data).compile().memory_analysis())
    return {"xla_bytes": stats.argument_size_in_bytes + stats.output_size_in_bytes
            - stats.alias_size_in_bytes + stats.temp_size_in_bytes}


def child_measure(config, cache_dir):
    import time

    import jax
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
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, __file__, "--child", phase, json.dumps(config), cache_dir],
        capture_output=True, text=True, env=env,
    )
    lines = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")]
    if result.returncode or not lines:
        raise RuntimeError(f"{phase} {config} failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def _label(config):
    parts = [f"{config['preset']} {config['batch_size']}x{config['sequence_length']}"]
    if config.get("lora_rank"):
        parts.append(f"LoRA {config['lora_rank']}")
    if config.get("mixed_precision"):
        parts.append("bf16")
    if config.get("gradient_accumulation_steps", 1) > 1:
        parts.append(f"accum {config['gradient_accumulation_steps']}")
    return ", ".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="gpt2_tiny_random only")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        phase, config, cache_dir = args.child
        run = child_compile if phase == "compile" else child_measure
        print("RESULT " + json.dumps(run(json.loads(config), cache_dir)), flush=True)
        return

    import kgpt2

    mib = 2**20
    print(f"{'configuration':<44} {'plan MiB':>9} {'measured':>9} {'baseline':>9} "
          f"{'XLA plan':>9} {'error':>7}  cache")
    rows = []
    for config in QUICK if args.quick else FULL:
        estimate = kgpt2.plan(**config)
        with tempfile.TemporaryDirectory(prefix="kgpt2-plan-cache-") as cache_dir:
            compiled = _run_child("compile", config, cache_dir)
            measured = _run_child("measure", config, cache_dir)
        error = estimate.total_bytes / measured["measured_bytes"] - 1
        rows.append(dict(config, label=_label(config), plan_bytes=estimate.total_bytes,
                         buffer_bytes=estimate.total_bytes - estimate.runtime_bytes,
                         **compiled, **measured, error=error))
        print(f"{_label(config):<44} {estimate.total_bytes / mib:>9.0f} "
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
