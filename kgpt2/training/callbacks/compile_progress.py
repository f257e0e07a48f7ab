"""`CompileProgress`: say that the first step is compiling, while it does."""

import logging
import sys
import time

import keras

logger = logging.getLogger("kgpt2")


class CompileProgress(keras.callbacks.Callback):
    """Show "compiling the training step..." during a fit's first step.

    The first step traces and compiles the model (tens of seconds for
    GPT-2 on a CPU); without a word it looks like a hang. On a terminal a
    `rich` spinner runs until the step ends; otherwise one line is logged
    to the "kgpt2" logger, and the compile time after the step.

    Example:
    ```python
    import kgpt2, tensorflow as tf
    from kgpt2.training.callbacks.compile_progress import CompileProgress

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=16)
    texts = tf.data.Dataset.from_tensor_slices(["a b c"] * 4).batch(2)
    lm.fit(texts, epochs=1, verbose=0, callbacks=[CompileProgress()])
    ```
    """

    def __init__(self):
        super().__init__()
        self._started = None
        self._status = None
        self._done = False

    def on_train_batch_begin(self, batch, logs=None):
        if self._done or self._started is not None or not logger.isEnabledFor(logging.INFO):
            return
        self._started = time.perf_counter()
        if sys.stderr.isatty():
            from rich.console import Console

            self._status = Console(stderr=True).status("compiling the training step...")
            self._status.start()
        else:
            logger.info("Compiling the training step...")

    def on_train_batch_end(self, batch, logs=None):
        self._finish()

    def on_train_end(self, logs=None):
        self._finish()

    def _finish(self):
        if self._started is None or self._done:
            return
        self._done = True
        if self._status is not None:
            self._status.stop()
        logger.info(f"Compiled the training step in {time.perf_counter() - self._started:.0f} s.")
