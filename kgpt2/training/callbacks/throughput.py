"""`TokensPerSecond`: measure training throughput in tokens per second."""

import time

import keras

from kgpt2.errors import InputError
from kgpt2.training.callbacks.metric_state import StepMetricReader


class TokensPerSecond(keras.callbacks.Callback):
    """Measure training tokens/s and add `tokens_per_second` to each step's logs.

    A step's tokens are its batch size (read from the loss metric's weight)
    times `sequence_length` (padding included: the model computes it). Its
    time runs from `on_train_batch_begin` to `on_train_batch_end`, so data
    loading, validation, checkpoints and samples are left out. Steps that
    compile the training function (the first of each `fit` call, and the
    first of each new batch size, e.g. a short last batch) are left out of
    the overall mean `tokens_per_second`.

    Args:
        sequence_length: tokens per example; defaults to the model's
            preprocessor's `sequence_length`.

    Example:
    ```python
    import kgpt2, tensorflow as tf
    from kgpt2.training.callbacks import TokensPerSecond

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    meter = TokensPerSecond()
    texts = tf.data.Dataset.from_tensor_slices(["a b c"] * 8).batch(4)
    lm.fit(texts, epochs=2, verbose=0, callbacks=[meter])
    print(meter.tokens_per_second)
    ```
    """

    def __init__(self, sequence_length=None):
        super().__init__()
        self.sequence_length = sequence_length
        self.tokens = 0
        self.seconds = 0.0
        self._reader = StepMetricReader()
        self._skip = False
        self._batch_sizes = set()
        self._started = None

    @property
    def tokens_per_second(self):
        """Mean tokens/s over the measured steps, or None before any."""
        return self.tokens / self.seconds if self.seconds > 0 else None

    def on_train_begin(self, logs=None):
        if self.sequence_length is None:
            preprocessor = getattr(self.model, "preprocessor", None)
            if preprocessor is None:
                raise InputError(
                    "TokensPerSecond needs sequence_length: the model has no preprocessor."
                )
            self.sequence_length = preprocessor.sequence_length
        self._skip = True

    def on_epoch_begin(self, epoch, logs=None):
        self._reader.reset()

    def on_train_batch_begin(self, batch, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        seconds = time.perf_counter() - self._started
        step = self._reader.read(self.model).get("loss")
        if step is None or logs is None:
            return
        batch_size = int(round(step[1]))
        tokens = batch_size * self.sequence_length
        logs["tokens_per_second"] = tokens / seconds
        if self._skip or batch_size not in self._batch_sizes:
            self._skip = False
            self._batch_sizes.add(batch_size)
        else:
            self.tokens += tokens
            self.seconds += seconds
