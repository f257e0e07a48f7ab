"""`MetricsCSV`: one CSV row per training step, and a logged progress line."""

import csv
import io
import logging
import math
import pathlib

from kgpt2.atomic import write_atomically
from kgpt2.runs import RunError
from kgpt2.training.callbacks.metric_state import StepMetricReader
from kgpt2.training.callbacks.step import StepCallback

log = logging.getLogger(__name__)

COLUMNS = [
    "step",
    "epoch",
    "loss",
    "accuracy",
    "learning_rate",
    "tokens_per_second",
    "val_loss",
    "val_accuracy",
    "val_perplexity",
]


def _format(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _read_rows(path):
    try:
        with open(path, newline="", encoding="utf-8") as file:
            return list(csv.DictReader(file))
    except (UnicodeDecodeError, csv.Error) as error:
        raise RunError(
            f"{path} is not a text CSV file ({type(error).__name__}: {error}), so "
            "kgpt2 can't continue the run's log. Move it out of the run folder "
            "(a new one is started) or pass restore_from='fresh' (`--restore-from fresh`)."
        ) from None


def truncate_metrics(path, last_step):
    """Drop the rows of `path` after `last_step` (steps a crash made us redo).

    Raises:
        RunError: `path` is not a text CSV file.

    Example:
    ```python
    from kgpt2.training.callbacks.metrics_csv import truncate_metrics

    truncate_metrics("checkpoint/run1/metrics.csv", last_step=100)
    ```
    """
    path = pathlib.Path(path)
    if not path.is_file():
        return
    rows = [row for row in _read_rows(path) if (row.get("step") or "").isdigit()]
    kept = [row for row in rows if int(row["step"]) <= last_step]
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(kept)
    write_atomically(path, table.getvalue().encode("utf-8"))


def read_metrics(path):
    """Read a run's `metrics.csv` as a list of dicts of floats (None when empty).

    Raises:
        RunError: `path` is not a text CSV file.

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.training.callbacks.metrics_csv import read_metrics

    path = pathlib.Path(tempfile.mkdtemp()) / "metrics.csv"
    path.write_text("step,loss,val_loss\\n1,10.5,\\n2,9.75,9.9\\n")
    print(read_metrics(path)[-1])  # {'step': 2.0, 'loss': 9.75, 'val_loss': 9.9}
    ```
    """
    return [
        {key: float(value) if value else None for key, value in row.items()}
        for row in _read_rows(path)
    ]


class MetricsCSV(StepCallback):
    """Write each training step's metrics to a CSV file, and log progress.

    Columns: step, epoch, loss and accuracy of that step alone (not Keras's
    running epoch mean), learning_rate (the schedule's value after the step,
    i.e. the next step's rate), tokens_per_second (when `TokensPerSecond`
    runs before this callback), and on the last step of an epoch with
    validation data val_loss, val_accuracy and val_perplexity
    (`exp(val_loss)`). Rows are appended as they come, so a crash loses at
    most the current step's.

    Args:
        path: the CSV file; created with a header if missing, else appended.
        initial_step: the step training starts after (for resumed runs).
        print_every: log a progress line every this many steps (0: never).
            Validation results are logged at each epoch end.
        total_steps: shown in the progress line.

    Example:
    ```python
    import tempfile, kgpt2, tensorflow as tf
    from kgpt2.training.callbacks import MetricsCSV

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    path = tempfile.mkdtemp() + "/metrics.csv"
    texts = tf.data.Dataset.from_tensor_slices(["a b c"] * 8).batch(4)
    lm.fit(texts, epochs=1, verbose=0, callbacks=[MetricsCSV(path, print_every=1)])
    ```
    """

    def __init__(self, path, initial_step=0, print_every=0, total_steps=None):
        super().__init__(initial_step)
        self.path = pathlib.Path(path)
        self.print_every = print_every
        self.total_steps = total_steps
        self.last_row = None
        self._reader = StepMetricReader()
        self._last_row_offset = None
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists() or self.path.stat().st_size == 0:
            with open(self.path, "w", newline="", encoding="utf-8") as file:
                csv.DictWriter(file, COLUMNS).writeheader()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._reader.reset()

    def on_step_end(self, step, logs):
        model = self.model  # syncs JAX state into the model's variables
        values = self._reader.read(model)
        row = {
            "step": step,
            "epoch": self._epoch + 1,
            "loss": values.get("loss", (logs.get("loss"), 0))[0],
            "accuracy": values.get("accuracy", (logs.get("accuracy"), 0))[0],
            "learning_rate": float(model.optimizer.learning_rate),
            "tokens_per_second": logs.get("tokens_per_second"),
        }
        self._write(row)
        if self.print_every and step % self.print_every == 0:
            log.info(self._progress_line(row))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if "val_loss" not in logs or self.last_row is None:
            return
        val_loss = float(logs["val_loss"])
        row = dict(
            self.last_row,
            val_loss=val_loss,
            val_accuracy=logs.get("val_accuracy"),
            val_perplexity=math.exp(val_loss) if val_loss < 700 else math.inf,
        )
        # The epoch's last step row is already written: replace it.
        with open(self.path, "r+", encoding="utf-8") as file:
            file.truncate(self._last_row_offset)
        self._write(row)
        log.info(
            "epoch %d  step %d  val_loss %.4f  val_perplexity %.2f",
            epoch + 1, row["step"], val_loss, row["val_perplexity"],
        )

    def _write(self, row):
        self._last_row_offset = self.path.stat().st_size
        with open(self.path, "a", newline="", encoding="utf-8") as file:
            csv.DictWriter(file, COLUMNS).writerow({k: _format(v) for k, v in row.items()})
        self.last_row = row

    def _progress_line(self, row):
        total = f"/{self.total_steps}" if self.total_steps else ""
        parts = [f"step {row['step']}{total}", f"loss {row['loss']:.4f}"]
        if row["accuracy"] is not None:
            parts.append(f"accuracy {row['accuracy']:.3f}")
        parts.append(f"lr {row['learning_rate']:.3g}")
        if row["tokens_per_second"] is not None:
            parts.append(f"{row['tokens_per_second']:,.0f} tokens/s")
        return "  ".join(parts)
