"""The base of callbacks that act on the run's global step."""

import keras


class StepCallback(keras.callbacks.Callback):
    """A callback that counts the run's steps across epochs and `fit` calls.

    Keras numbers batches from 0 in every epoch; a run resumed at step 120
    passes `initial_step=120` so that `self.step` keeps counting from there.
    Subclasses implement `on_step_end(step, logs)`.

    Example:
    ```python
    from kgpt2.training.callbacks import StepCallback

    class PrintStep(StepCallback):
        def on_step_end(self, step, logs):
            print(step, logs["loss"])
    ```
    """

    def __init__(self, initial_step=0):
        super().__init__()
        self.step = initial_step

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self.on_step_end(self.step, logs if logs is not None else {})

    def on_step_end(self, step, logs):
        pass
