"""`RunCheckpoint`: save the run atomically every N steps and when training stops."""

import logging
import math

import keras

from kgpt2.training.callbacks.nan_stop import kept_checkpoint
from kgpt2.training.callbacks.step import StepCallback

log = logging.getLogger(__name__)


def _weights_are_finite(model):
    # Checked where the weights are, shard by shard: only the verdict comes
    # to the host, and a weight sharded across processes needs no gathering.
    return all(
        bool(keras.ops.all(keras.ops.isfinite(v.value)))
        for v in model.trainable_variables
    )


class RunCheckpoint(StepCallback):
    """Save checkpoints of a `RunDirectory`: every `save_every` steps, at the
    last step, and when training stops early (Ctrl-C, a callback's
    `stop_training`).

    A step is never saved after a NaN or infinite loss, nor with non-finite
    weights: the previous checkpoint stays the run's latest.

    Args:
        run_directory: an open `kgpt2.training.checkpoints.RunDirectory`.
        save_every: steps between checkpoints (None or 0: only at the end).
        total_steps: the run's last step, always saved.
        initial_step: the step training starts after (for resumed runs).
        state: settings stored in each checkpoint's `training_state.json`;
            `steps_per_epoch` in it also records the epoch.
        preprocessor: the preprocessor to save with the model when
            it is detached from it during training (tokenized datasets).

    Example:
    ```python
    from kgpt2.training.callbacks import RunCheckpoint
    from kgpt2.training.checkpoints import RunDirectory

    with RunDirectory.open("checkpoint", "run1") as run_directory:
        callback = RunCheckpoint(run_directory, save_every=100, total_steps=1000)
        # lm.fit(..., callbacks=[callback])
    ```
    """

    def __init__(
        self,
        run_directory,
        save_every=None,
        total_steps=None,
        initial_step=0,
        state=None,
        preprocessor=None,
    ):
        super().__init__(initial_step)
        self.run_directory = run_directory
        self.save_every = save_every
        self.total_steps = total_steps
        self.state = dict(state or {})
        self.preprocessor = preprocessor
        self.last_checkpoint = None
        self.saved_step = initial_step
        self.diverged = False

    def on_step_end(self, step, logs):
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged = True
        due = (self.save_every and step % self.save_every == 0) or step == self.total_steps
        if due or self.model.stop_training:
            self.save()

    def on_train_end(self, logs=None):
        # fit ended between steps: a stop at an epoch's end, or the last step.
        if self.model.stop_training or self.step == self.total_steps:
            self.save()

    def save(self):
        """Save the current step now, unless it is saved already or diverged."""
        if self.step == self.saved_step or self.diverged:
            return None
        model = self.model  # syncs JAX state into the model's variables
        if not _weights_are_finite(model):
            self.diverged = True
            log.warning(
                "Not saving step %d: the weights hold NaN or inf; %s.",
                self.step,
                kept_checkpoint(self.run_directory),
            )
            return None
        state = dict(self.state)
        if state.get("steps_per_epoch"):
            state["epoch"] = self.step // state["steps_per_epoch"]
        self.last_checkpoint = self.run_directory.save(model, self.step, state, self.preprocessor)
        self.saved_step = self.step
        log.info("Saved step %d to %s", self.step, self.last_checkpoint.path)
        return self.last_checkpoint
