"""`StopOnNaN`: stop training cleanly at the first NaN or infinite loss."""

import logging
import math

import keras

from kgpt2.training.callbacks.step import StepCallback

log = logging.getLogger(__name__)


def kept_checkpoint(run_directory):
    """Say which checkpoint of `run_directory` (a `RunDirectory`, or None) stays the latest.

    Example:
    ```python
    from kgpt2.training.callbacks.nan_stop import kept_checkpoint

    print(kept_checkpoint(None))  # the run's latest checkpoint, if it has one, is kept
    ```
    """
    if run_directory is None:
        return "the run's latest checkpoint, if it has one, is kept"
    latest = run_directory.latest()
    if latest is None:
        return "no checkpoint of this run was written, so none is kept"
    return f"the last good one, step {latest.step} ({latest.path.name}), is kept"


class StopOnNaN(StepCallback, keras.callbacks.TerminateOnNaN):
    """Keras's `TerminateOnNaN`, with the run's step in a clear message.

    Stops with `model.stop_training` (so other callbacks still see the end
    of training) and records `stopped_step`. `RunCheckpoint` never saves a
    step whose loss was not finite, so the last good checkpoint stays the
    run's latest; given the run, the message says which one that is (or that
    there is none).

    Example:
    ```python
    from kgpt2.training.callbacks import StopOnNaN

    callback = StopOnNaN()
    # lm.fit(..., callbacks=[callback]); then callback.stopped_step
    ```
    """

    def __init__(self, initial_step=0, raise_error=False, run_directory=None):
        StepCallback.__init__(self, initial_step)
        self.run_directory = run_directory
        self.raise_error = raise_error
        self.stopped_step = None
        self.message = None

    def on_step_end(self, step, logs):
        loss = logs.get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        self.stopped_step = step
        self.message = (
            f"The loss became {float(loss)} at step {step}: training stopped. "
            f"Checkpoints after a non-finite loss are not written; {kept_checkpoint(self.run_directory)}. "
            "Try a lower learning rate, warmup_steps or clipnorm."
        )
        if self.raise_error:
            raise RuntimeError(self.message)
        log.error(self.message)
        self.model.stop_training = True
