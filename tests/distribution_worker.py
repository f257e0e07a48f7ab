"""Train gpt2_tiny_random on two virtual CPU devices; print results as JSON.

Run by tests/test_distribution.py in a subprocess, because XLA reads
`--xla_force_host_platform_device_count` once, when JAX starts.

For each mode (single device, data_parallel, model_parallel) it loads the
same model, trains it for a few steps on the same batches, once with plain
`fit` under `kgpt2.training.distribution.distributed` and once with
`kgpt2.finetune(distribution=mode)` and its default run options (a sample
at the last step), and reports the per-step losses, the samples, how the
variables are laid out, and the bytes device 0 holds (to check
`kgpt2.plan` against). Then it runs the `kgpt2 finetune` command with its
default options and `--distribution data_parallel`, as a user would.
"""

import contextlib
import json
import os
import sys
import tempfile

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
)

STEPS = 4
BATCH_SIZE = 4
SEQUENCE_LENGTH = 32


def texts():
    """The same batch STEPS times, so the loss falls step after step."""
    words = "the quick brown fox jumps over a lazy dog while cats sleep".split()
    batch = [
        " ".join(words[(i * 7 + j) % len(words)] for j in range(5 + 3 * i))
        for i in range(BATCH_SIZE)
    ]
    return batch * STEPS


def device0_bytes(variables):
    import jax

    device = jax.devices()[0]
    total = 0
    for variable in variables:
        for shard in variable.value.addressable_shards:
            if shard.device == device:
                total += shard.data.nbytes
    return total


def train(mode):
    import keras
    import numpy as np

    import kgpt2
    from kgpt2.training.distribution import distributed

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=SEQUENCE_LENGTH, seed=0)
    original = [w.copy() for w in lm.get_weights()]
    losses = []

    class RecordLoss(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float(logs["loss"]))

    result = {}
    with distributed(lm, mode) as lm:
        result["weights_preserved"] = all(
            np.array_equal(a, b) for a, b in zip(original, lm.get_weights())
        )
        lm.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        lm.fit(texts(), batch_size=BATCH_SIZE, epochs=1, shuffle=False,
               verbose=0, callbacks=[RecordLoss()])
        result["layouts"] = {
            v.path: {
                "spec": str(v.value.sharding.spec)
                if hasattr(v.value.sharding, "spec") else None,
                "devices": len(v.value.sharding.device_set),
                "replicated": bool(v.value.sharding.is_fully_replicated),
                "shard_shape": list(v.value.addressable_shards[0].data.shape),
            }
            for v in lm.backbone.weights
        }
        result["device0_weight_bytes"] = device0_bytes(lm.backbone.weights)
        moments = [v for v in lm.optimizer.variables if len(v.shape) > 0]
        result["device0_adam_bytes"] = device0_bytes(moments)
        final = lm.get_weights()
    # Saving after the scope gathers the shards into an ordinary preset.
    with tempfile.TemporaryDirectory() as folder:
        kgpt2.save(lm, os.path.join(folder, "preset"))
        reloaded = kgpt2.load(os.path.join(folder, "preset")).get_weights()
    result["save_load_round_trip"] = all(
        np.array_equal(a, b) for a, b in zip(final, reloaded))
    result["losses"] = losses
    result["weights_changed"] = not all(
        np.array_equal(a, b) for a, b in zip(original, final))
    return result, final


def finetune(mode):
    """`kgpt2.finetune(distribution=mode)`: losses, and what the caller keeps."""
    import keras
    import numpy as np
    import tensorflow as tf

    import kgpt2

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=SEQUENCE_LENGTH, seed=0)
    losses = []

    class RecordLoss(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float(logs["loss"]))

    batches = tf.data.Dataset.from_tensor_slices(texts()).batch(BATCH_SIZE)
    with tempfile.TemporaryDirectory() as folder:
        outcome = kgpt2.finetune(
            lm, batches, steps=STEPS, learning_rate=1e-3, checkpoint_dir=folder,
            distribution=mode, callbacks=[RecordLoss()])
        final = lm.get_weights()
        saved = kgpt2.load(str(outcome.run_dir)).get_weights()
        samples = (outcome.run_dir / "samples.txt").read_text("utf-8")
    return {
        "losses": losses,
        "step": outcome.step,
        "samples": samples,
        "caller_has_the_saved_weights": all(
            np.array_equal(a, b) for a, b in zip(final, saved)),
    }, final


def created_laid_out(mode):
    """Whether `kgpt2.load(..., distribution=mode)` holds the weights a whole load holds, laid out."""
    import numpy as np

    import kgpt2

    whole = kgpt2.load("gpt2_tiny_random", seed=5).backbone.weights
    laid_out = kgpt2.load("gpt2_tiny_random", seed=5, distribution=mode).backbone.weights
    embedding = laid_out[0].value
    return {
        "equal": all(np.array_equal(np.asarray(a.value), np.asarray(b.value))
                     for a, b in zip(whole, laid_out, strict=True)),
        "embedding_shard_shape": list(embedding.sharding.shard_shape(embedding.shape)),
    }


def finetune_command():
    """`kgpt2 finetune` with only what a user must pass, on both devices: its exit status and samples."""
    from kgpt2.cli import main as kgpt2_command

    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        with open("lines.txt", "w", encoding="utf-8") as file:
            file.write("\n".join(texts()) + "\n")
        status = kgpt2_command([
            "finetune", "--preset", "gpt2_tiny_random", "--data", "text:lines.txt",
            "--steps", str(STEPS), "--sequence-length", str(SEQUENCE_LENGTH),
            "--batch-size", str(BATCH_SIZE), "--distribution", "data_parallel",
        ])
        samples = os.path.join("checkpoint", "run1", "samples.txt")
        return {"status": status,
                "samples": open(samples, encoding="utf-8").read() if os.path.exists(samples) else None}


def main():
    import jax

    modes = sys.argv[1:] or ["single", "data_parallel", "model_parallel"]
    import numpy as np

    report = {"device_count": jax.device_count()}
    for run, prefix in ((train, ""), (finetune, "finetune_")):
        finals = {}
        for mode in modes:
            name = prefix + mode
            report[name], finals[mode] = run(None if mode == "single" else mode)
            if "single" in finals:
                report[name]["max_weight_difference_from_single"] = max(
                    float(np.max(np.abs(a - b)))
                    for a, b in zip(finals["single"], finals[mode]))
    for mode in modes:
        if mode != "single":
            report["created_" + mode] = created_laid_out(mode)
    if "data_parallel" in modes:
        report["command_data_parallel"] = finetune_command()
    print("RESULT " + json.dumps(report))


if __name__ == "__main__":
    main()
