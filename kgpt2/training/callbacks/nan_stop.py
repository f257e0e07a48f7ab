"""`StopOnNaN`: stop training cleanly at the first NaN or infinite loss."""

import logging
import math

import keras

from kgpt2.training.callbacks.step import StepCallback

log = logging.getLogger(__name__)


class StopOnNaN(StepCallback, keras.callbacks.TerminateOnNaN):
    """Keras's `TerminateOnNaN`, with the run's step in a clear message.

    Stops with `model.stop_training` (so other callbacks still see the end
    of training) and records `stopped_step`. `RunCheckpoint` never saves a
    step whose loss was not finite, so the last good checkpoint stays the
    run's latest.

    Example:
    ```python
    from kgpt2.training.callbacks import StopOnNaN

    callback = StopOnNaN()
    # lm.fit(..., callbacks=[callback]); then callback.stopped_step
    ```
    """

    def __init__(self, initial_step=0, raise_error=False):
        StepCallback.__init__(self, initial_step)
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
            "Checkpoints after a non-finite loss are not written; the last good "
            "one is kept. Try a lower learning rate, warmup_steps or clipnorm."
        )
        if self.raise_error:
            raise RuntimeError(self.message)
        log.error(self.message)
        self.model.stop_training = True
