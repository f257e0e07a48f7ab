"""One process of a two-process training group on the loopback address.

Run twice (process 0 and 1) by tests/test_processes.py:

    python processes_worker.py PROCESS_ID NUM_PROCESSES COORDINATOR OUT_DIR MODE...

First each process runs the `kgpt2 finetune` command as a user would, with
its default options (samples and checkpoints included), data parallel, into
the run `OUT_DIR/checkpoint/run1`; the command joins the group (JAX's distributed
runtime, Gloo on CPU). Then, for each MODE ("data_parallel",
"model_parallel"), it trains gpt2_tiny_random into the run `OUT_DIR/MODE`
with `kgpt2.finetune`: it stops after `STOP_AT` of `STEPS` steps, then
resumes to the end. The first part trains a model created laid out
(`kgpt2.load(..., distribution=MODE)`), the second one loaded whole (which
`kgpt2.finetune` rebuilds laid out). Process 0 writes the runs; each
process reports what it saw in `OUT_DIR/MODE-<process_id>.json` and
`OUT_DIR/cli-<process_id>.json`.
"""

import contextlib
import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"

STEPS = 4
STOP_AT = 2
BATCH_SIZE = 4
SEQUENCE_LENGTH = 16


def texts():
    """STEPS batches of BATCH_SIZE different lines (each process feeds half of each)."""
    words = "the quick brown fox jumps over a lazy dog while cats sleep".split()
    return [
        " ".join(words[(i * 5 + j) % len(words)] for j in range(3 + i % 7))
        for i in range(BATCH_SIZE * STEPS)
    ]


def options(mode):
    """The run's recipe options; constant learning rate, so every run is comparable.

    The run options (checkpoints, samples, progress lines) are the defaults.
    """
    return dict(steps=STEPS, learning_rate=3e-3, end_learning_rate=3e-3, distribution=mode)


def finetune_command(process_id, num_processes, coordinator, out_dir):
    """`kgpt2 finetune` in `out_dir`, with only what a user must pass; returns its exit status."""
    from kgpt2.cli import main as kgpt2_command

    with contextlib.chdir(out_dir):  # the run goes to ./checkpoint/run1, as a user's does
        lines = f"lines-{process_id}.txt"
        with open(lines, "w", encoding="utf-8") as file:
            file.write("\n".join(texts()) + "\n")
        return kgpt2_command([
            "finetune", "--preset", "gpt2_tiny_random", "--data", f"text:{lines}",
            "--steps", str(STEPS), "--sequence-length", str(SEQUENCE_LENGTH),
            "--batch-size", str(BATCH_SIZE), "--distribution", "data_parallel",
            "--num-processes", num_processes, "--process-id", process_id, "--coordinator", coordinator,
        ])


def batches(lm):
    """The texts as tokenized batches: tokenized once, eagerly (a tf.data map
    of the tokenizer would trace its graph anew for every run, for seconds)."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(lm.preprocessor(texts())).batch(BATCH_SIZE)


def train(lm, out_dir, run_name, mode, callbacks=()):
    import kgpt2

    return kgpt2.finetune(
        lm, batches(lm), checkpoint_dir=out_dir, run_name=run_name,
        callbacks=list(callbacks), **options(mode),
    )


def report(out_dir, run_name, process_id, result, **extra):
    import jax

    values = dict(
        process_count=jax.process_count(), process_index=jax.process_index(),
        step=result.step, stop_reason=result.stop_reason,
        checkpoint=str(result.checkpoint), metrics=result.metrics, **extra,
    )
    path = os.path.join(out_dir, f"{run_name}-{process_id}.json")
    with open(path, "w", encoding="utf-8") as file:
        json.dump(values, file)


def held_fraction(lm):
    """The part of the backbone's weights one device (this process's one) holds."""
    import math

    held = sum(math.prod(v.value.sharding.shard_shape(v.value.shape)) for v in lm.backbone.weights)
    return held / sum(v.value.size for v in lm.backbone.weights)


def main():
    process_id, num_processes, coordinator, out_dir, *modes = sys.argv[1:]
    status = finetune_command(process_id, num_processes, coordinator, out_dir)
    with open(os.path.join(out_dir, f"cli-{process_id}.json"), "w", encoding="utf-8") as file:
        json.dump({"status": status}, file)
    import keras

    import kgpt2

    # The command joined the group already: this checks it is the same one.
    kgpt2.connect_processes(int(num_processes), int(process_id), coordinator)

    class StopAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch + 1 == STOP_AT:
                self.model.stop_training = True

    for mode in modes:
        lm = kgpt2.load("gpt2_tiny_random", sequence_length=SEQUENCE_LENGTH, seed=0, distribution=mode)
        held = held_fraction(lm)
        stopped = train(lm, out_dir, mode, mode, [StopAt()])
        lm = kgpt2.load("gpt2_tiny_random", sequence_length=SEQUENCE_LENGTH, seed=0)
        resumed = train(lm, out_dir, mode, mode)
        report(out_dir, mode, process_id, resumed, stopped_at=stopped.step,
               resumed_from=resumed.resumed_from, held_fraction=held)


if __name__ == "__main__":
    main()
