"""`StopOnInterrupt`: Ctrl-C (or SIGTERM) ends training cleanly after the step."""

import logging
import signal
import threading

import keras

log = logging.getLogger(__name__)


class StopOnInterrupt(keras.callbacks.Callback):
    """Turn the first Ctrl-C (SIGINT) or SIGTERM into a clean stop.

    Use it as a context manager around `fit`: inside, the first signal only
    sets a flag; at the end of the current step (or epoch) the callback sets
    `model.stop_training`, so `RunCheckpoint` saves the step before `fit`
    returns, like gpt-2-simple's Ctrl-C. The signal's previous handler is
    reinstated at once: a second Ctrl-C interrupts immediately, without
    saving. Outside the main thread (where Python can't handle signals) it
    does nothing.

    Example:
    ```python
    from kgpt2.training.callbacks import StopOnInterrupt

    interrupt = StopOnInterrupt()
    with interrupt:
        pass  # lm.fit(..., callbacks=[interrupt, checkpoint])
    # None, or the name of the signal that arrived.
    print(interrupt.interrupted)  # None
    ```
    """

    def __init__(self, signals=(signal.SIGINT, signal.SIGTERM)):
        super().__init__()
        self.signals = tuple(signals)
        self.interrupted = None
        self._previous = {}
        self._announced = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for number in self.signals:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info):
        self._restore()

    def _restore(self):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _handle(self, number, frame):
        # Only set a flag: the step in progress finishes, then fit stops.
        self.interrupted = signal.Signals(number).name
        self._restore()

    def _stop_if_interrupted(self):
        if self.interrupted and not self._announced:
            self._announced = True
            log.warning(
                "%s: stopping after this step and saving a checkpoint "
                "(interrupt again to stop without saving).",
                self.interrupted,
            )
        if self.interrupted:
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self._stop_if_interrupted()

    def on_epoch_end(self, epoch, logs=None):
        self._stop_if_interrupted()
