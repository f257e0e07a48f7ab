#!/usr/bin/env python3
"""Does bfloat16 mixed precision learn as float32 does? Two loss curves, one PNG.

Fine-tunes `gpt2_tiny_random` (same initial weights, same batches in the
same order) on the Tang poems shipped with kgpt2 twice, `--steps` steps
each: once in float32, once with `mixed_precision=True` (mixed_bfloat16:
float32 weights and optimizer, bfloat16 products). Every `--every` steps it
logs each run's mean loss over those steps, prints both with their relative
difference, and draws the curves side by side. The claim checked: after
step `--after`, every logged bfloat16 loss is within `--tolerance` of
float32's. Each run's training tokens/s is printed too (on a tiny model,
that is mostly overhead; `kgpt2 bench --mixed-precision` measures speed).

Run (from the repository root; any Keras backend):
  PYTHONPATH=$PWD python benchmarks/mixed_precision_curve.py --png mixed_precision_curve.png
  KERAS_BACKEND=tensorflow PYTHONPATH=$PWD python benchmarks/mixed_precision_curve.py
"""

import argparse
import json
import sys
import time


class StepLosses:
    """Per-step losses from Keras's running epoch mean (`k m_k - (k-1) m_(k-1)`)."""

    def __init__(self):
        import keras

        outer = self

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                outer.means.append(float(logs["loss"]))

        self.means = []
        self.callback = Callback()

    def window_means(self, every):
        """The mean loss of each `every` consecutive steps, and the step ending each."""
        means = self.means
        totals = [0.0] + [(k + 1) * m for k, m in enumerate(means)]
        ends = list(range(every, len(means) + 1, every))
        return ends, [(totals[end] - totals[end - every]) / every for end in ends]


def train(policy, steps, batch_size, length, learning_rate):
    import keras

    import kgpt2
    import kgpt2.demo
    from kgpt2.training.preprocessing import detached_preprocessor

    keras.utils.set_random_seed(0)
    lm = kgpt2.load("gpt2_tiny_random", sequence_length=length)
    batches = kgpt2.data.poetry(
        kgpt2.data.sample_poems_path(), to_simplified=True, batch_size=batch_size, pack=True,
        sequence_length=length, tokenizer=lm.preprocessor.tokenizer).repeat()
    kgpt2.compile(lm, steps=steps, learning_rate=learning_rate, warmup_steps=10,
                  mixed_precision=policy)
    losses = StepLosses()
    start = time.perf_counter()
    with detached_preprocessor(lm):  # the batches are token ids already
        lm.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[losses.callback])
    seconds = time.perf_counter() - start
    return losses, steps * batch_size * length / seconds


def plot(path, ends, curves):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, values in curves.items():
        left.plot(ends, values, marker=".", label=name)
    left.set(xlabel="step", ylabel="mean training loss over the logged steps",
             title="gpt2_tiny_random on the Tang sample")
    left.legend()
    full, low = curves.values()
    right.plot(ends, [100 * (b - a) / a for a, b in zip(full, low)], marker=".")
    right.axhline(0, color="gray", linewidth=0.5)
    right.set(xlabel="step", ylabel="bfloat16 vs float32 loss (%)", title="relative difference")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=10, help="log the mean loss of every N steps")
    parser.add_argument("--after", type=int, default=20, help="check steps after this one")
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--png", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import keras

    import kgpt2  # noqa: F401  (first: it picks the Keras backend, JAX unless KERAS_BACKEND says)

    curves, speeds = {}, {}
    for policy in ("float32", "mixed_bfloat16"):
        losses, speeds[policy] = train(policy, args.steps, args.batch_size, args.length,
                                       args.learning_rate)
        ends, curves[policy] = losses.window_means(args.every)
    full, low = curves["float32"], curves["mixed_bfloat16"]
    differences = [(b - a) / a for a, b in zip(full, low)]
    checked = [d for end, d in zip(ends, differences) if end > args.after]
    worst = max(abs(d) for d in checked)
    print(f"backend {keras.config.backend()}: gpt2_tiny_random, {args.steps} steps of "
          f"{args.batch_size} x {args.length} tokens, Tang sample")
    print(f"{'step':>5s} {'float32':>9s} {'bfloat16':>9s} {'diff':>7s}")
    for end, a, b, d in zip(ends, full, low, differences):
        print(f"{end:5d} {a:9.4f} {b:9.4f} {100 * d:6.2f}%")
    print(f"worst |difference| after step {args.after}: {100 * worst:.2f}% "
          f"({'within' if worst <= args.tolerance else 'NOT within'} {100 * args.tolerance:.0f}%)")
    print("training tokens/s: " + ", ".join(f"{k} {v:.0f}" for k, v in speeds.items()))
    if args.png:
        plot(args.png, ends, {"float32": full, "mixed_bfloat16": low})
        print(f"wrote {args.png}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"backend": keras.config.backend(), "steps": ends, "curves": curves,
                       "tokens_per_second": speeds, "worst_after": worst}, file, indent=1)
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
