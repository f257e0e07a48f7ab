"""`finetune(tensorboard=True)`: event files read back with TensorBoard's own reader."""

import math
import os
import signal

import keras
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util
from training_helpers import SEQUENCE_LENGTH
from training_helpers import enable_jax_compilation_cache
from training_helpers import tokenize_to_file
from training_helpers import tokenized_dataset

import kgpt2
from kgpt2.training.callbacks.metrics_csv import read_metrics
from kgpt2.training.callbacks.tensorboard import truncate_events


@pytest.fixture(scope="module", autouse=True)
def jax_cache(tmp_path_factory):
    enable_jax_compilation_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    return tokenize_to_file(tmp_path_factory.mktemp("tokens") / "tang.npz")


def read_events(log_dir):
    """`{tag: [(step, value)]}` of every tensor summary, as TensorBoard reads them."""
    events = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    events.Reload()
    curves = {}
    for tag in events.Tags()["tensors"]:
        curves[tag] = [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)]
    return curves


class CrashAtStep(keras.callbacks.Callback):
    """Raise after step N has been logged, as a killed process would stop."""

    def __init__(self, step):
        super().__init__()
        self.crash_step, self.step = step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step == self.crash_step:
            raise RuntimeError("simulated crash")


class CtrlCAtStep(CrashAtStep):
    """Send this process SIGINT as step N begins, as Ctrl-C would."""

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.step += 1
        if self.step == self.crash_step:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
def test_a_crashed_interrupted_and_resumed_run_leaves_one_continuous_curve(tmp_path, tokens):
    settings = dict(
        steps=8, epochs=2, learning_rate=2e-3, warmup_steps=2, checkpoint_dir=tmp_path,
        save_every=2, sample_every=8, sample_prompt="床", sample_length=6,
        tensorboard=True,
    )
    data = tokenized_dataset(tokens, count=32)
    validation = tokenized_dataset(tokens, count=8)

    def new_lm():
        return kgpt2.load("gpt2_tiny_random", sequence_length=SEQUENCE_LENGTH)

    # Steps 1-5 logged, the crash after step 5 loses it (last checkpoint: 4);
    # the next call redoes step 5 and is interrupted at step 6 (saved);
    # the last call completes steps 7-8.
    with pytest.raises(RuntimeError, match="simulated crash"):
        kgpt2.finetune(new_lm(), data, validation, callbacks=[CrashAtStep(5)], **settings)
    log_dir = tmp_path / "run1" / "tensorboard"
    assert [step for step, _ in read_events(log_dir)["train/loss"]] == [1, 2, 3, 4, 5]
    interrupted = kgpt2.finetune(new_lm(), data, validation, callbacks=[CtrlCAtStep(2)], **settings)
    assert (interrupted.stop_reason, interrupted.resumed_from, interrupted.step) == ("interrupted", 4, 6)
    done = kgpt2.finetune(new_lm(), data, validation, **settings)
    assert (done.stop_reason, done.resumed_from, done.step) == ("completed", 6, 8)

    curves = read_events(log_dir)
    rows = {int(row["step"]): row for row in read_metrics(tmp_path / "run1" / "metrics.csv")}
    assert sorted(rows) == list(range(1, 9))
    for tag, column in (("train/loss", "loss"), ("train/accuracy", "accuracy"),
                        ("train/learning_rate", "learning_rate")):
        assert [step for step, _ in curves[tag]] == list(range(1, 9)), tag
        for step, value in curves[tag]:
            assert float(value) == pytest.approx(rows[step][column], rel=1e-5, abs=1e-7), (tag, step)
    assert [step for step, _ in curves["train/tokens_per_second"]] == list(range(1, 9))
    assert all(float(value) > 0 for _, value in curves["train/tokens_per_second"])
    # Validation when an epoch (4 steps) ends, and where Ctrl-C ended one,
    # as in metrics.csv; perplexity = exp(loss).
    validated = [step for step, row in rows.items() if row["val_loss"] is not None]
    assert validated[0] == 4 and validated[-1] == 8
    assert [step for step, _ in curves["validation/loss"]] == validated
    for (step, loss), (_, perplexity) in zip(curves["validation/loss"], curves["validation/perplexity"]):
        assert float(loss) == pytest.approx(rows[step]["val_loss"], rel=1e-5)
        assert float(perplexity) == pytest.approx(math.exp(float(loss)), rel=1e-5)
    samples = curves["samples"]
    assert [step for step, _ in samples] == [8]
    assert all(text.item().decode("utf-8").startswith("床") for _, text in samples)


def test_truncating_keeps_the_steps_up_to_the_checkpoint(tmp_path):
    for steps in (range(1, 4), range(4, 7)):
        writer = tf.summary.create_file_writer(str(tmp_path), filename_suffix=f".{steps[0]}.v2")
        with writer.as_default():
            for step in steps:
                tf.summary.scalar("train/loss", float(step), step=step)
        writer.close()
    files_before = sorted(tmp_path.iterdir())
    truncate_events(tmp_path, last_step=2)
    assert [step for step, _ in read_events(tmp_path)["train/loss"]] == [1, 2]
    # The second file had only later steps: it is gone; the first is rewritten.
    assert sorted(tmp_path.iterdir()) == files_before[:1]
