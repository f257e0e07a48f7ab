"""`TensorBoardLogger`: a run's curves and samples as TensorBoard event files."""

import pathlib
import re
import time

import tensorflow as tf

from kgpt2.atomic import atomic_writer
from kgpt2.atomic import check_writable
from kgpt2.checks import shown_name
from kgpt2.errors import WriteError
from kgpt2.training.callbacks.metric_state import StepMetricReader
from kgpt2.training.callbacks.step import StepCallback

# The run's event files go here, inside the run folder, so that
# `tensorboard --logdir CHECKPOINT_DIR` shows every run side by side.
TENSORBOARD_DIR = "tensorboard"
EVENT_FILE_PATTERN = "events.out.tfevents.*"


def _event_files(log_dir):
    return sorted(pathlib.Path(log_dir).glob(EVENT_FILE_PATTERN))


def check_log_dir(log_dir):
    """Raise `WriteError` now unless event files can be written in `log_dir`.

    Called before training, as the run folder is checked, so that a
    read-only folder is one line, not TensorFlow's error at the first step.

    Example:
    ```python
    import tempfile
    from kgpt2.training.callbacks.tensorboard import check_log_dir

    check_log_dir(tempfile.mkdtemp() + "/tensorboard")  # passes
    ```
    """
    try:
        check_writable(pathlib.Path(log_dir) / "events.out.tfevents")
    except WriteError as error:
        cause = getattr(error.__cause__, "strerror", None) or "a file is in the way"
        raise WriteError(
            f"{shown_name('tensorboard')}: can't write event files in '{log_dir}' ({cause}). "
            f"Make that folder writable, or train without {shown_name('tensorboard')}."
        ) from None


def truncate_events(log_dir, last_step):
    """Drop the summaries after `last_step` from the event files in `log_dir`.

    A run resumed at a checkpoint redoes the steps after it; without this,
    TensorBoard would draw both versions of those steps. Files are rewritten
    atomically, and a file left with no summaries is removed (only event
    files, which kgpt2 wrote, are touched). A file cut short by a crash keeps
    its complete records.

    Example:
    ```python
    import tempfile
    from kgpt2.training.callbacks.tensorboard import truncate_events

    truncate_events(tempfile.mkdtemp(), last_step=100)  # nothing to do
    ```
    """
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    for path in _event_files(log_dir):
        records = list(RawEventFileLoader(str(path)).Load())
        kept = [r for r in records if not _is_summary_after(Event.FromString(r), last_step)]
        if len(kept) == len(records):
            continue
        if not any(Event.FromString(r).HasField("summary") for r in kept):
            path.unlink()
            continue
        with atomic_writer(path, "wb") as file:
            writer = RecordWriter(file)
            for record in kept:
                writer.write(record)


def _is_summary_after(event, last_step):
    return event.HasField("summary") and event.step > last_step


def _wait_for_a_newer_name(log_dir):
    """Sleep until a new event file's name sorts after the existing ones'.

    TensorBoard reads a folder's event files in name order, and names start
    with the creation second: a run resumed within the second its previous
    file was made would otherwise be read first.
    """
    seconds = [int(m.group(1)) for p in _event_files(log_dir)
               if (m := re.match(r"events\.out\.tfevents\.(\d+)\.", p.name))]
    while seconds and int(time.time()) <= max(seconds):
        time.sleep(0.05)


class TensorBoardLogger(StepCallback):
    """Write a run's training curves and samples as TensorBoard event files.

    Per step: `train/loss` and `train/accuracy` (that step's own values, as
    in `metrics.csv`), `train/learning_rate` and, when `TokensPerSecond`
    runs before this callback, `train/tokens_per_second`. Per epoch with
    validation data: `validation/loss`, `validation/accuracy` and
    `validation/perplexity`. Each sample of a `SampleEvery` callback that
    runs before this one becomes a `samples` text summary. Everything is
    logged at the run's global step, so a resumed run (`initial_step`)
    continues the same curves; summaries a crash left after `initial_step`
    are dropped first. Events are flushed every step: a crash loses none.

    Args:
        log_dir: the folder of the event files (created if missing).
        initial_step: the step training starts after (for resumed runs).
        samples: a `SampleEvery` (anything with a `.samples` list of
            `(step, text)`), or None.

    Example:
    ```python
    import tempfile, kgpt2, tensorflow as tf
    from kgpt2.training.callbacks import TensorBoardLogger

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    texts = tf.data.Dataset.from_tensor_slices(["a b c"] * 8).batch(4)
    lm.fit(texts, epochs=1, verbose=0, callbacks=[TensorBoardLogger(tempfile.mkdtemp())])
    ```
    """

    def __init__(self, log_dir, initial_step=0, samples=None):
        super().__init__(initial_step)
        self.log_dir = pathlib.Path(log_dir)
        self.samples = samples
        self._reader = StepMetricReader()
        self._writer = None
        self._samples_seen = len(samples.samples) if samples is not None else 0

    def on_train_begin(self, logs=None):
        # `fit` may be called several times (epochs split in segments): one
        # writer, one event file, per callback.
        if self._writer is not None:
            return
        check_log_dir(self.log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        truncate_events(self.log_dir, self.step)
        _wait_for_a_newer_name(self.log_dir)
        self._writer = tf.summary.create_file_writer(str(self.log_dir))

    def on_epoch_begin(self, epoch, logs=None):
        self._reader.reset()

    def _scalars(self, values, step):
        with self._writer.as_default():
            for tag, value in values.items():
                if value is not None:
                    tf.summary.scalar(tag, float(value), step=step)

    def on_step_end(self, step, logs):
        model = self.model  # syncs JAX state into the model's variables
        values = self._reader.read(model)
        self._scalars({
            "train/loss": values.get("loss", (logs.get("loss"),))[0],
            "train/accuracy": values.get("accuracy", (logs.get("accuracy"),))[0],
            "train/learning_rate": float(model.optimizer.learning_rate),
            "train/tokens_per_second": logs.get("tokens_per_second"),
        }, step)
        if self.samples is not None:
            with self._writer.as_default():
                for sample_step, text in self.samples.samples[self._samples_seen:]:
                    tf.summary.text("samples", text, step=sample_step)
            self._samples_seen = len(self.samples.samples)
        self._writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        import math

        logs = logs or {}
        if "val_loss" not in logs:
            return
        val_loss = float(logs["val_loss"])
        self._scalars({
            "validation/loss": val_loss,
            "validation/accuracy": logs.get("val_accuracy"),
            "validation/perplexity": math.exp(val_loss) if val_loss < 700 else math.inf,
        }, self.step)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()

    def close(self):
        """Close the event file (it is also closed when the callback is freed)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
