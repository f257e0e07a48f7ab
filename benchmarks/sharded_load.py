"""Peak memory per process of loading a model laid out model-parallel over processes.

    PYTHONPATH=. python benchmarks/sharded_load.py                       # gpt2_base_random
    PYTHONPATH=. python benchmarks/sharded_load.py --preset gpt2_tiny_random --processes 2

Each configuration runs in fresh processes (JAX backend, one CPU device
each, Gloo between them on 127.0.0.1). A process imports kgpt2, Keras,
KerasHub and JAX, joins its group (`kgpt2.connect_processes`), starts the
JAX client, records its resident memory (VmRSS, the "baseline"), resets
the kernel's high-water mark (`/proc/self/clear_refs`) and loads the
model; "peak" is then VmHWM, the whole process's peak, and "load" is peak
minus baseline: what loading the model cost.

- "one process": `kgpt2.load(preset)`, the whole model in one process.
- "sharded": `kgpt2.load(preset, distribution="model_parallel")` in each of
  N processes: variables created laid out, each device drawing only its
  block of each variable, 1 MiB at a time, with the values Keras draws
  (`kgpt2.presets.sharded_variables`).
- "built whole, then laid out": what `kgpt2.finetune` does with a model
  loaded whole: `kgpt2.load(preset)` then rebuilt under the distribution
  (`kgpt2.training.distribution.prepare`), in each of N processes.

The ratios compare each process of a group with the one process.
"""

import argparse
import json
import pathlib

from process_group import run_group

MODES = ("one process", "sharded", "built whole, then laid out")


def _kib(field):
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(mode, preset, num_processes, process_id, coordinator):
    import ctypes

    import jax
    import jax.numpy as jnp

    import kgpt2
    from kgpt2.presets.gpt2_layout import get_distribution
    from kgpt2.training.distribution import laid_out
    from kgpt2.training.distribution import prepare

    if num_processes > 1:
        kgpt2.connect_processes(num_processes, process_id, coordinator)
    kgpt2.presets.gpt2_tokenizer()  # import Keras, KerasHub, TensorFlow

    jnp.ones(8).block_until_ready()  # start the client and its threads
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    baseline = _kib("VmRSS")
    pathlib.Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM
    if mode == "sharded":
        lm = kgpt2.load(preset, sequence_length=128, distribution="model_parallel")
    else:
        lm = kgpt2.load(preset, sequence_length=128)
        if mode != "one process":
            distribution = get_distribution("model_parallel", lm.backbone.get_config())
            lm = prepare(lm, distribution)
    distribution = get_distribution("model_parallel", lm.backbone.get_config())
    peak = _kib("VmHWM")
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    after = _kib("VmRSS")
    return {
        "after_bytes": after * 1024,
        "baseline_bytes": baseline * 1024,
        "peak_bytes": peak * 1024,
        "load_bytes": (peak - baseline) * 1024,
        "laid_out": laid_out(lm, distribution) if mode != "one process" else None,
        "devices": jax.device_count(),
    }


def _run(mode, preset, num_processes):
    return run_group(__file__, [mode, preset, str(num_processes)], num_processes, timeout_s=900)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="gpt2_base_random")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=MODES)
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, preset, num_processes, process_id, coordinator = args.child
        result = child(mode, preset, int(num_processes), int(process_id), coordinator)
        print("RESULT " + json.dumps(result), flush=True)
        return

    mib = 2**20
    rows = {}
    print(f"{args.preset}, {args.processes} processes x 1 CPU device; MiB per process")
    print(f"{'load':<28} {'baseline':>9} {'peak':>9} {'load':>9} {'after':>9} {'peak ratio':>11} "
          f"{'load ratio':>11}")
    for mode in ["one process", *(m for m in args.modes if m != "one process")]:
        results = _run(mode, args.preset, 1 if mode == "one process" else args.processes)
        rows[mode] = results
        one = rows["one process"][0]
        for result in results:
            print(f"{mode:<28} {result['baseline_bytes'] / mib:>9.0f} {result['peak_bytes'] / mib:>9.0f} "
                  f"{result['load_bytes'] / mib:>9.0f} {result['after_bytes'] / mib:>9.0f} "
                  f"{result['peak_bytes'] / one['peak_bytes']:>10.2f}x "
                  f"{result['load_bytes'] / one['load_bytes']:>10.2f}x", flush=True)
    sharded = max(rows["sharded"], key=lambda r: r["peak_bytes"])
    one = rows["one process"][0]
    print(f"\nsharded load, worst process: peak {sharded['peak_bytes'] / one['peak_bytes']:.2f}x the "
          f"one-process peak, load {sharded['load_bytes'] / one['load_bytes']:.2f}x (target <= 0.65x)")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
