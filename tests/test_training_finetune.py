"""kgpt2.finetune on gpt2_tiny_random and the Tang fixture (a few dozen steps)."""

import kgpt2  # first: it picks the Keras backend

import math  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from training_helpers import SEQUENCE_LENGTH  # noqa: E402
from training_helpers import SETTINGS  # noqa: E402
from training_helpers import enable_jax_compilation_cache  # noqa: E402
from training_helpers import text_dataset  # noqa: E402
from training_helpers import tokenize_to_file  # noqa: E402
from training_helpers import tokenized_dataset  # noqa: E402

from kgpt2.training.callbacks.metrics_csv import read_metrics  # noqa: E402
from kgpt2.training.checkpoints import RunDirectory  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def jax_cache(tmp_path_factory):
    enable_jax_compilation_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    return tokenize_to_file(tmp_path_factory.mktemp("tokens") / "tang.npz")


def fresh_lm():
    return kgpt2.load("gpt2_tiny_random", sequence_length=SEQUENCE_LENGTH)


def quiet(*args):
    pass


def mean(values):
    return sum(values) / len(values)


def test_loss_falls_schedule_ends_and_run_directory_is_complete(tmp_path):
    lm = fresh_lm()
    lines = []
    result = kgpt2.finetune(
        lm,
        text_dataset(batch_size=4, count=48),  # 12 steps per epoch
        val_ds=text_dataset(batch_size=4, count=8),
        epochs=2,
        learning_rate=2e-3,
        warmup_steps=3,
        end_learning_rate=1e-5,
        checkpoint_dir=tmp_path,
        run_name="poems",
        save_every=10,
        sample_every=12,
        sample_prompt="春",
        sample_length=12,
        print_every=6,
        print_fn=lines.append,
    )
    rows = read_metrics(tmp_path / "poems" / "metrics.csv")
    assert [row["step"] for row in rows] == list(range(1, 25))
    losses = [row["loss"] for row in rows]
    assert mean(losses[-4:]) < mean(losses[:4]) - 0.5, losses
    # Warmup to the peak at step 3, then down to end_learning_rate after the
    # last step: the CSV logs the rate after each step.
    assert rows[2]["learning_rate"] == pytest.approx(2e-3)
    assert rows[-1]["learning_rate"] == pytest.approx(1e-5)
    assert float(lm.optimizer.learning_rate) == pytest.approx(1e-5)
    rates = [row["learning_rate"] for row in rows[2:]]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    # Validation after each epoch, on the epoch's last step.
    validated = [row for row in rows if row["val_loss"] is not None]
    assert [row["step"] for row in validated] == [12, 24]
    assert validated[-1]["val_perplexity"] == pytest.approx(math.exp(validated[-1]["val_loss"]), rel=1e-4)
    assert result.history["val_loss"] == pytest.approx([row["val_loss"] for row in validated], rel=1e-5)
    assert all(row["tokens_per_second"] > 0 for row in rows)

    assert result.stop_reason == "completed" and result.message is None
    assert (result.step, result.total_steps, result.resumed_from) == (24, 24, 0)
    assert result.tokens_per_second > 0
    assert result.metrics["loss"] == pytest.approx(losses[-1])
    run_dir = tmp_path / "poems"
    assert result.run_dir == run_dir
    assert (run_dir / "LATEST").read_text().strip() == f"{result.checkpoint.name}/model"
    assert result.checkpoint.name.startswith("ckpt-00000024-")
    # keep_checkpoints=1: only the latest checkpoint folder remains.
    assert sorted(p.name for p in run_dir.glob("ckpt-*")) == [result.checkpoint.name]
    assert (run_dir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    samples = (run_dir / "samples.txt").read_text("utf-8")
    assert samples.count("======== step 12 ========\n春") == 1 and "step 24" in samples
    assert any(line.startswith("step 6/24  loss") for line in lines)
    assert any("Saved step 10 to" in line for line in lines)

    loaded = kgpt2.load(run_dir)
    assert loaded.preprocessor.sequence_length == SEQUENCE_LENGTH
    assert all(np.array_equal(a, b) for a, b in zip(lm.get_weights(), loaded.get_weights()))

    # Running it again finds the run finished: nothing to do, nothing changes.
    again = kgpt2.finetune(
        lm, text_dataset(batch_size=4, count=48), epochs=2, learning_rate=2e-3,
        checkpoint_dir=tmp_path, run_name="poems", print_fn=lines.append,
    )
    assert (again.step, again.resumed_from, again.checkpoint) == (24, 24, result.checkpoint)
    assert "nothing to train" in lines[-1]


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


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path, tokens):
    lm = fresh_lm()
    lines = []
    result = kgpt2.finetune(
        lm, tokenized_dataset(tokens), checkpoint_dir=tmp_path, save_every=2,
        print_fn=lines.append, callbacks=[PoisonWeightsAfterStep(3)], **SETTINGS,
    )
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


def test_lora_mixed_precision_and_accumulation_train_save_and_resume(tmp_path, tokens):
    lm = fresh_lm()
    settings = dict(
        steps=16, learning_rate=5e-2, lora_rank=4, mixed_precision=True,
        gradient_accumulation_steps=2, checkpoint_dir=tmp_path, save_every=8, print_fn=quiet,
    )
    result = kgpt2.finetune(lm, tokenized_dataset(tokens), **settings)
    losses = [row["loss"] for row in read_metrics(tmp_path / "run1" / "metrics.csv")]
    # Only the attention adapters learn, and the random model's output
    # embedding is frozen near zero: the loss can't fall far from ln(50257).
    assert len(losses) == 16 and mean(losses[-4:]) < mean(losses[:4]) - 0.03, losses
    # One update per two steps; LoRA trained only the query/value adapters.
    assert int(lm.optimizer.iterations) == 8
    assert {v.path.rsplit("/", 1)[-1] for v in lm.trainable_variables} == {"lora_kernel_a", "lora_kernel_b", "bias"}
    assert lm.backbone.transformer_layers[0].compute_dtype == "bfloat16"

    trained = [v.numpy() for v in [*lm.variables, *lm.optimizer.variables]]

    # The run loads as a plain float32 GPT-2 holding the merged weights.
    loaded = kgpt2.load(result.run_dir)
    assert loaded.backbone.dtype_policy.name == "float32"
    assert not any(getattr(layer, "lora_enabled", False) for layer in loaded.backbone._flatten_layers())
    batch = next(iter(tokenized_dataset(tokens)))[0]
    kgpt2.compile(lm, steps=1, lora_rank=4)  # back to float32 compute, to compare
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded.backbone(batch)),
        keras.ops.convert_to_numpy(lm.backbone(batch)),
        atol=1e-5,
    )

    # Resuming restores the unmerged LoRA weights and the optimizer exactly.
    resumed = fresh_lm()
    kgpt2.compile(resumed, steps=16, lora_rank=4, mixed_precision=True, gradient_accumulation_steps=2)
    with RunDirectory.open(tmp_path, "run1") as run:
        state = run.restore(resumed, run.latest())
    assert state["step"] == 16 and state["lora_rank"] == 4
    restored = [v.numpy() for v in [*resumed.variables, *resumed.optimizer.variables]]
    assert len(trained) == len(restored)
    assert all(np.array_equal(a, b) for a, b in zip(trained, restored))


def test_resuming_another_architecture_is_a_clear_error(tmp_path, tiny_lm):
    import keras_hub

    other = keras_hub.models.GPT2CausalLM(
        backbone=keras_hub.models.GPT2Backbone(
            vocabulary_size=50257, num_layers=1, num_heads=2, hidden_dim=64,
            intermediate_dim=128, max_sequence_length=1024,
        ),
        preprocessor=tiny_lm.preprocessor,
    )
    kgpt2.compile(other, steps=4)
    with RunDirectory.open(tmp_path, "run1") as run:
        run.save(other, step=2, state={})
    with pytest.raises(ValueError, match="different architecture.*num_layers: run 1 vs model 2"):
        kgpt2.finetune(fresh_lm(), text_dataset(), steps=4, checkpoint_dir=tmp_path, print_fn=quiet)


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
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=message):
            kgpt2.finetune(tiny_lm, texts, checkpoint_dir=tmp_path / "runs", **options)
    datasets = [
        (["not", "a", "dataset"], "tf.data.Dataset"),
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


def test_a_run_in_use_is_locked(tmp_path, tiny_lm):
    with RunDirectory.open(tmp_path, "run1"):
        with pytest.raises(ValueError, match="being trained by another process"):
            kgpt2.finetune(tiny_lm, text_dataset(), steps=2, checkpoint_dir=tmp_path, print_fn=quiet)


def test_a_corrupt_pointer_is_a_clear_load_error(tmp_path):
    run = tmp_path / "run1"
    run.mkdir()
    (run / "LATEST").write_text("../../elsewhere/model\n")
    with pytest.raises(kgpt2.PresetError, match="not a folder inside the run"):
        kgpt2.load(run)
    (run / "LATEST").write_text("ckpt-00000001-abcdef/model\n")
    with pytest.raises(kgpt2.PresetError, match="not a preset folder"):
        kgpt2.load(run)
