#!/usr/bin/env python3
"""Where a TensorFlow training step's time goes: the step's time by op.

On `gpt2_base_random` at batch x length tokens (default 8 x 128, float32),
this compiles the model with `kgpt2.compile` on the TensorFlow Keras backend
and rebuilds its step as Keras's own graph step (oneDNN ops, no XLA; with
`--xla` it keeps kgpt2's XLA step, which the trace shows as whole clusters),
runs `--warmup` steps, then traces `--steps` steps of `train_on_batch` with
TensorFlow's profiler and reads the trace (`*.xplane.pb`): every op's time
on TensorFlow's executor threads, summed by op type and by op name (layer
numbers folded, so the twelve blocks' `MatMul`s are one row), per step.

The figures are op-seconds: the executor runs independent ops on two
threads at once, so they add up to more than the step's wall-clock time,
and on a loaded machine every op is slower. Read them as shares.

With `--ab xla,nodropout` (any of them) it instead times `train_on_batch`
for the graph step ("graph": Keras's default on a CPU, oneDNN ops) and
each variant in turn, `--rounds` times in this one process (so all see the
same load), and prints median wall-clock and CPU seconds and their ratios
to the graph step: `xla` compiles the step with XLA (`jit_compile=True`,
what `kgpt2.compile` builds), `nodropout` is the graph step with every
dropout rate 0 (what dropout costs; GPT-2 trains with 0.1).

Run (from the repository root):
  KERAS_BACKEND=tensorflow PYTHONPATH=$PWD python benchmarks/tf_training_profile.py
  KERAS_BACKEND=tensorflow PYTHONPATH=$PWD python benchmarks/tf_training_profile.py --ab xla,nodropout
"""

import argparse
import collections
import glob
import os
import re
import statistics
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import tensorflow as tf

import kgpt2
from kgpt2.bench.training import training_batch
from kgpt2.training.compiling import build_train_step
from kgpt2.training.compiling import compile as compile_lm
from kgpt2.training.preprocessing import detached_preprocessor


def op_seconds(trace_dir):
    """Seconds per `(op type, op name)` on the executor threads of a trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)[0]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as file:
        space.ParseFromString(file.read())
    host = next(plane for plane in space.planes if plane.name == "/host:CPU")
    seconds = collections.Counter()
    counts = collections.Counter()
    for line in host.lines:
        if not line.name.startswith("tf_Compute"):
            continue
        for event in line.events:
            label = host.event_metadata[event.metadata_id].name
            # Ops are "name:Type"; the executor's own events (Process,
            # ThreadpoolListener) enclose them and are left out.
            if ":" not in label or label.startswith(("ExecutorState", "Threadpool")):
                continue
            name, op_type = label.rsplit(":", 1)
            name = re.sub(r"_\d+(?=/|$)", "", re.sub(r"transformer_layer_\d+", "layer_*", name))
            seconds[op_type, name] += event.duration_ps / 1e12
            counts[op_type, name] += 1
    return seconds, counts


def print_profile(seconds, counts, steps, rows):
    total = sum(seconds.values())
    by_type, type_counts = collections.Counter(), collections.Counter()
    for (op_type, _), value in seconds.items():
        by_type[op_type] += value
    for (op_type, _), value in counts.items():
        type_counts[op_type] += value
    print(f"op-seconds per step: {total / steps:.2f}")
    print(f"{'op type':36s} {'ops':>6s} {'s/step':>8s} {'share':>6s}")
    for op_type, value in by_type.most_common(rows):
        print(f"{op_type:36s} {type_counts[op_type] // steps:6d} {value / steps:8.3f} "
              f"{100 * value / total:5.1f}%")
    print()
    print(f"{'op type':22s} {'op name (layers folded)':80s} {'ops':>5s} {'s/step':>7s} {'share':>6s}")
    for (op_type, name), value in seconds.most_common(rows):
        print(f"{op_type:22s} {name[-80:]:80s} {counts[op_type, name] // steps:5d} "
              f"{value / steps:7.3f} {100 * value / total:5.1f}%")


def profile(lm, x, y, sample_weight, warmup, steps, rows):
    trace_dir = tempfile.mkdtemp(prefix="kgpt2-tf-profile-")
    with detached_preprocessor(lm):
        for _ in range(warmup):
            lm.train_on_batch(x, y, sample_weight=sample_weight)
        tf.profiler.experimental.start(trace_dir)
        start = time.perf_counter()
        for _ in range(steps):
            lm.train_on_batch(x, y, sample_weight=sample_weight)
        wall = (time.perf_counter() - start) / steps
        tf.profiler.experimental.stop()
    print(f"traced {steps} steps, {wall:.2f} s/step wall-clock (with the profiler on); "
          f"trace in {trace_dir}")
    print_profile(*op_seconds(trace_dir), steps, rows)


def ab(lm, x, y, sample_weight, variants, rounds):
    """Time the graph step and each variant in turn, `rounds` times."""
    dropouts = [layer for layer in lm.backbone._flatten_layers()
                if isinstance(layer, keras.layers.Dropout)]
    rates = [layer.rate for layer in dropouts]
    functions = {}
    with detached_preprocessor(lm):
        for variant in ["graph", *variants]:
            compile_lm(lm, learning_rate=5e-5, steps=1000)
            # The rate and jit_compile are read when the step is traced, so
            # each variant's step function keeps its own.
            for layer, rate in zip(dropouts, rates):
                layer.rate = 0.0 if variant == "nodropout" else rate
            build_train_step(lm, xla=variant == "xla")
            for _ in range(2):
                lm.train_on_batch(x, y, sample_weight=sample_weight)
            functions[variant] = lm.train_function
        wall = collections.defaultdict(list)
        cpu = collections.defaultdict(list)
        for round_ in range(rounds):
            for variant, function in functions.items():
                lm.train_function = function
                start, cpu_start = time.perf_counter(), time.process_time()
                lm.train_on_batch(x, y, sample_weight=sample_weight)
                wall[variant].append(time.perf_counter() - start)
                cpu[variant].append(time.process_time() - cpu_start)
                print(f"round {round_} {variant:10s} {wall[variant][-1]:7.2f} s wall "
                      f"{cpu[variant][-1]:7.2f} s CPU", flush=True)
    graph_wall, graph_cpu = statistics.median(wall["graph"]), statistics.median(cpu["graph"])
    print(f"{'step':10s} {'wall s':>7s} {'CPU s':>7s} {'speed-up (wall)':>16s} {'(CPU)':>6s}")
    for variant in functions:
        w, c = statistics.median(wall[variant]), statistics.median(cpu[variant])
        print(f"{variant:10s} {w:7.2f} {c:7.2f} {graph_wall / w:15.3f}x {graph_cpu / c:5.3f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="8,128", help="BATCH,LENGTH")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="steps traced")
    parser.add_argument("--rows", type=int, default=40, help="rows of each table")
    parser.add_argument("--ab", default=None, help="variants to time: xla, nodropout")
    parser.add_argument("--rounds", type=int, default=3, help="with --ab")
    parser.add_argument("--xla", action="store_true", help="profile kgpt2's XLA step")
    args = parser.parse_args(argv)
    assert keras.config.backend() == "tensorflow", "the profile needs KERAS_BACKEND=tensorflow"
    batch, length = (int(n) for n in args.train.split(","))
    lm = kgpt2.load("gpt2_base_random", sequence_length=length)
    x, y, sample_weight = training_batch(batch, length, lm.backbone.vocabulary_size)
    print(f"gpt2_base_random {batch} x {length}, float32, tensorflow {tf.__version__}, "
          f"keras {keras.__version__}")
    if args.ab:
        variants = args.ab.split(",")
        unknown = set(variants) - {"xla", "nodropout"}
        if unknown:
            parser.error(f"--ab: unknown variants {', '.join(sorted(unknown))}")
        return ab(lm, x, y, sample_weight, variants, args.rounds)
    compile_lm(lm, learning_rate=5e-5, steps=1000)
    if not args.xla:
        build_train_step(lm, xla=False)
    profile(lm, x, y, sample_weight, args.warmup, args.steps, args.rows)


if __name__ == "__main__":
    main()
