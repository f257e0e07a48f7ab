"""kgpt2.finetune on gpt2_tiny_random and the Tang fixture.

The end-to-end run on text (loss, schedule, run directory) is in
test_training_cli.py; the crash tests in test_training_crash.py.
"""

import logging
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from training_helpers import SEQUENCE_LENGTH
from training_helpers import SETTINGS
from training_helpers import text_dataset
from training_helpers import tokenize_to_file
from training_helpers import tokenized_dataset

import kgpt2
from kgpt2.training.callbacks.metrics_csv import read_metrics
from kgpt2.training.checkpoints import RunDirectory
from kgpt2.training.schedule import checkpointed_variables


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    return tokenize_to_file(tmp_path_factory.mktemp("tokens") / "tang.npz")


def fresh_lm():
    return kgpt2.load("gpt2_tiny_random", sequence_length=SEQUENCE_LENGTH)


def mean(values):
    return sum(values) / len(values)


class PoisonWeightsAfterStep(keras.callbacks.Callback):
    """Corrupt the model after step N, as a diverging run would."""

    def __init__(self, step):
        super().__init__()
        self.poison_step, self.step = step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step == self.poison_step:
            embeddings = self.model.backbone.token_embedding.embeddings
            embeddings.assign(np.full(embeddings.shape, np.nan, "float32"))


@pytest.mark.slow
def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path, tokens, caplog):
    caplog.set_level(logging.INFO, logger="kgpt2")
    lm = fresh_lm()
    result = kgpt2.finetune(
        lm, tokenized_dataset(tokens), checkpoint_dir=tmp_path, save_every=2,
        callbacks=[PoisonWeightsAfterStep(3)], **SETTINGS,
    )
    lines = [record.getMessage() for record in caplog.records]
    assert result.stop_reason == "nan"
    assert "at step 4" in result.message and "last good" in result.message
    assert result.message in lines
    assert not any("Saved step 4" in line for line in lines)
    assert result.step == 2 and result.checkpoint.name.startswith("ckpt-00000002-")
    rows = read_metrics(tmp_path / "run1" / "metrics.csv")
    assert [row["step"] for row in rows] == [1, 2, 3, 4] and math.isnan(rows[-1]["loss"])
    loaded = kgpt2.load(tmp_path / "run1")
    assert all(np.isfinite(weight).all() for weight in loaded.get_weights())
    # The preprocessor detached for the tokenized dataset is back.
    assert lm.preprocessor is not None


@pytest.mark.slow
def test_runs_that_differ_in_steps_and_rates_share_one_compiled_step(tmp_path, tokens, caplog):
    # The schedule's settings are optimizer variables, not constants of the
    # program: the second run reads the first one's step from JAX's cache.
    # (Samples are off: this is about the training step.)
    runs = [dict(steps=2, learning_rate=1e-3),
            dict(steps=3, learning_rate=4e-3, warmup_steps=1, end_learning_rate=1e-4)]
    for index, options in enumerate(runs):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="jax._src.compiler"):
            result = kgpt2.finetune(fresh_lm(), tokenized_dataset(tokens), checkpoint_dir=tmp_path,
                                    run_name=f"run{index}", sample_every=0, **options)
        assert result.step == options["steps"]
    compiles = [record.getMessage() for record in caplog.records if "'jit_train_step'" in record.getMessage()]
    assert compiles and all("cache hit" in message for message in compiles), compiles


@pytest.mark.slow
def test_lora_mixed_precision_and_accumulation_train_save_and_resume(tmp_path, tokens):
    lm = fresh_lm()
    settings = dict(
        steps=16, epochs=1, learning_rate=5e-2, lora_rank=4, mixed_precision=True,
        gradient_accumulation_steps=2, checkpoint_dir=tmp_path, save_every=8,
    )
    result = kgpt2.finetune(lm, tokenized_dataset(tokens), **settings)
    losses = [row["loss"] for row in read_metrics(tmp_path / "run1" / "metrics.csv")]
    assert (result.stop_reason, result.step, result.total_steps) == ("completed", 16, 16)
    assert result.metrics["loss"] == pytest.approx(losses[-1], rel=1e-5) and result.tokens_per_second > 0
    assert len(result.history["loss"]) == 1  # one epoch
    # Only the attention adapters learn, and the random model's output
    # embedding is frozen near zero: the loss can't fall far from ln(50257).
    assert len(losses) == 16 and mean(losses[-4:]) < mean(losses[:4]) - 0.03, losses
    # One update per two steps; LoRA trained only the query/value adapters.
    assert int(lm.optimizer.iterations) == 8
    assert {v.path.rsplit("/", 1)[-1] for v in lm.trainable_variables} == {"lora_kernel_a", "lora_kernel_b", "bias"}
    assert lm.backbone.transformer_layers[0].compute_dtype == "bfloat16"
    # The default sample at the last step, generated in bfloat16 through the adapters.
    assert (tmp_path / "run1" / "samples.txt").read_text("utf-8").startswith("======== step 16 ========\n")

    trained = [v.numpy() for v in [*lm.variables, *checkpointed_variables(lm.optimizer)]]

    # The run loads as a plain float32 GPT-2 holding the merged weights.
    loaded = kgpt2.load(result.run_dir)
    assert loaded.backbone.dtype_policy.name == "float32"
    assert not any(getattr(layer, "lora_enabled", False) for layer in loaded.backbone._flatten_layers())
    batch = next(iter(tokenized_dataset(tokens)))[0]
    kgpt2.compile_lm(lm, steps=1, lora_rank=4)  # back to float32 compute, to compare
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded.backbone(batch)),
        keras.ops.convert_to_numpy(lm.backbone(batch)),
        atol=1e-5,
    )

    # Resuming restores the unmerged LoRA weights and the optimizer's state
    # exactly (its schedule's settings come from the recipe it resumes with).
    resumed = fresh_lm()
    kgpt2.compile_lm(resumed, steps=16, lora_rank=4, mixed_precision=True, gradient_accumulation_steps=2)
    with RunDirectory.open(tmp_path, "run1") as run:
        state = run.restore(resumed, run.latest())
    assert state["step"] == 16 and state["lora_rank"] == 4
    restored = [v.numpy() for v in [*resumed.variables, *checkpointed_variables(resumed.optimizer)]]
    assert len(trained) == len(restored)
    assert all(np.array_equal(a, b) for a, b in zip(trained, restored))


@pytest.mark.slow
@pytest.mark.slow
def test_defaults_label_epochs_by_pass_and_write_a_sample_at_the_end(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="kgpt2")
    # 2 batches per pass, 5 steps: epochs of 2, 2 and 1 step.
    result = kgpt2.finetune(
        fresh_lm(), text_dataset(count=8), steps=5, learning_rate=2e-3, sample_length=12,
        checkpoint_dir=tmp_path,
    )
    lines = [record.getMessage() for record in caplog.records]
    assert any("steps 1-5, 2 steps per epoch (one pass over the data)" in line for line in lines), lines
    rows = read_metrics(tmp_path / "run1" / "metrics.csv")
    assert [row["epoch"] for row in rows] == [1, 1, 2, 2, 3]
    assert result.step == 5 and len(result.history["loss"]) == 3
    # sample_every defaults to 100 steps, and the last step is always sampled.
    samples = (tmp_path / "run1" / "samples.txt").read_text("utf-8")
    assert samples.startswith("======== step 5 ========\n")
    assert samples.count("======== step") == 1


@pytest.mark.slow
def test_resuming_another_architecture_is_a_clear_error(tmp_path, tiny_lm):
    import keras_hub

    other = keras_hub.models.GPT2CausalLM(
        backbone=keras_hub.models.GPT2Backbone(
            vocabulary_size=50257, num_layers=1, num_heads=2, hidden_dim=64,
            intermediate_dim=128, max_sequence_length=1024,
        ),
        preprocessor=tiny_lm.preprocessor,
    )
    kgpt2.compile_lm(other, steps=4)
    with RunDirectory.open(tmp_path, "run1") as run:
        run.save(other, step=2, state={})
    with pytest.raises(ValueError, match="different architecture.*num_layers: run 1 vs model 2"):
        kgpt2.finetune(fresh_lm(), text_dataset(), steps=4, checkpoint_dir=tmp_path)


def test_bad_inputs_are_rejected_before_anything_is_written(tmp_path, tiny_lm, tokens):
    texts = text_dataset()
    cases = [
        (dict(run_name="../escape"), "run_name"),
        (dict(run_name="/tmp/elsewhere"), "run_name"),
        (dict(run_name="a/b"), "run_name"),
        (dict(restore_from="best"), "restore_from"),
        (dict(save_every=-1), "save_every"),
        (dict(sample_every=1.5), "sample_every"),
        (dict(steps=0), "steps"),
        (dict(callbacks=[print]), "callbacks"),
        (dict(sample_every=5, sample_length=5000), "sample_length"),
        (dict(lora_rank=-1), "lora_rank"),
        (dict(lora_rank=65), "lora_rank=65 is larger than the model's hidden size 64"),
        (dict(weight_decay=math.nan), "weight_decay must be a number >= 0, got nan"),
        (dict(sample_prompt="床前明月光" * 10, sample_length=20), "leaves no room for new tokens"),
        (dict(learning_rat=1e-3), "unknown option.*learning_rat"),
        (dict(recipe=dict(steps=2)), "recipe must be a kgpt2.Recipe"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=message):
            kgpt2.finetune(tiny_lm, texts, checkpoint_dir=tmp_path / "runs", **options)
    datasets = [
        (["not", "a", "dataset"], "tf.data.Dataset"),
        (tf.data.Dataset.range(8).batch(2), "neither batches of strings nor tokenized"),
        (tf.data.Dataset.from_tensor_slices(["unbatched"]), r"batch it first, e.g. train_ds.batch\(8\)"),
        (texts.filter(lambda batch: True), "unknown.*pass steps=N"),
        (texts.repeat(), "infinite.*pass steps=N"),
        (texts.take(0), "empty"),
    ]
    for dataset, message in datasets:
        with pytest.raises(ValueError, match=message):
            kgpt2.finetune(tiny_lm, dataset, checkpoint_dir=tmp_path / "runs")
    with pytest.raises(ValueError, match="both be text or both be tokenized"):
        kgpt2.finetune(tiny_lm, texts, val_ds=tokenized_dataset(tokens), checkpoint_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path.parent / "escape").exists()


def test_a_run_in_use_is_locked(tmp_path):
    with RunDirectory.open(tmp_path, "run1"):
        with pytest.raises(ValueError, match="being trained by another process"):
            kgpt2.finetune(fresh_lm(), text_dataset(), steps=2, checkpoint_dir=tmp_path)


def test_a_corrupt_pointer_is_a_clear_load_error(tmp_path):
    run = tmp_path / "run1"
    run.mkdir()
    (run / "LATEST").write_text("../../elsewhere/model\n")
    with pytest.raises(kgpt2.PresetError, match="not a folder inside the run"):
        kgpt2.load(run)
    (run / "LATEST").write_text("ckpt-00000001-abcdef/model\n")
    with pytest.raises(kgpt2.PresetError, match="not a preset folder"):
        kgpt2.load(run)


@pytest.mark.slow
def test_mixed_precision_trains_with_falling_loss(tokens):
    # Also run on TensorFlow, in test_tensorflow_backend.py's child process.
    from kgpt2.training.preprocessing import detached_preprocessor

    lm = fresh_lm()
    kgpt2.compile_lm(lm, steps=24, learning_rate=3e-3, warmup_steps=2, mixed_precision=True)
    assert lm.backbone.compute_dtype == "bfloat16"
    assert lm.backbone.token_embedding.embeddings.dtype == "float32"
    dataset = tokenized_dataset(tokens, batch_size=4, count=16)
    with detached_preprocessor(lm):
        losses = lm.fit(dataset.repeat(), steps_per_epoch=4, epochs=6, verbose=0).history["loss"]
    assert all(math.isfinite(loss) for loss in losses)
    # Epoch means of the same 16 poems: the last well below the first.
    assert losses[-1] < 0.9 * losses[0], losses


def _step_compiled_with_xla(train_function):
    # Keras's step function closes over its tf.function `one_step_on_data`.
    cells = [cell.cell_contents for cell in train_function.__closure__ or ()]
    return any(getattr(cell, "_jit_compile", None) for cell in cells)


@pytest.mark.tensorflow_only  # run by test_tensorflow_backend.py, in its TensorFlow process
def test_tensorflow_float32_step_is_xla_and_learns_what_the_graph_step_does():
    from kgpt2.bench.training import training_batch
    from kgpt2.training.preprocessing import detached_preprocessor

    lm = fresh_lm()
    # XLA draws other (equally distributed) dropout masks than TensorFlow's
    # kernels; without dropout the two steps compute the same function.
    for layer in lm.backbone._flatten_layers():
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    weights = lm.get_weights()
    x, y, sample_weight = training_batch(2, 16, lm.backbone.vocabulary_size)

    def losses(graph):
        lm.set_weights(weights)
        kgpt2.compile_lm(lm, steps=10, learning_rate=1e-3)
        with detached_preprocessor(lm):
            if graph:
                lm.make_train_function(force=True)  # lm.jit_compile is False here
            compiled_with_xla = _step_compiled_with_xla(lm.train_function)
            return compiled_with_xla, [
                lm.train_on_batch(x, y, sample_weight=sample_weight) for _ in range(3)
            ]

    xla, xla_losses = losses(graph=False)
    graph, graph_losses = losses(graph=True)
    assert xla and not graph
    assert not lm.jit_compile  # generation is compiled as before
    assert xla_losses[-1] < xla_losses[0]
    np.testing.assert_allclose(xla_losses, graph_losses, rtol=1e-5)
    # Mixed precision keeps the oneDNN graph.
    kgpt2.compile_lm(lm, steps=10, mixed_precision=True)
    assert lm.train_function is None
    kgpt2.compile_lm(lm, steps=10)  # back to float32 for other tests' sake
