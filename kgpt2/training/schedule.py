"""The fine-tuning learning-rate schedule: linear warmup, polynomial decay."""

import keras

from kgpt2.errors import InputError

# The names of the optimizer variables that hold a schedule's settings.
SETTING_PREFIX = "kgpt2_schedule_"


def checkpointed_variables(optimizer):
    """`optimizer`'s variables that a checkpoint holds: all but a schedule's settings.

    The settings come from the recipe a run is started or resumed with: a
    resumed run's schedule is its recipe's, and a checkpoint holds only the
    optimizer's state (iteration count and moments).

    Example:
    ```python
    import keras
    from kgpt2.training.schedule import WarmupPolynomialDecay, checkpointed_variables

    schedule = WarmupPolynomialDecay(1e-3, decay_steps=100)
    optimizer = keras.optimizers.Adam(schedule)
    schedule.keep_settings_in(optimizer)
    print(len(optimizer.variables), len(checkpointed_variables(optimizer)))  # 5 1
    ```
    """
    return [v for v in optimizer.variables if not v.name.startswith(SETTING_PREFIX)]


@keras.saving.register_keras_serializable(package="kgpt2")
class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak_learning_rate`, then polynomial decay.

    At step `s` (the optimizer's iteration count) the rate is
    `peak_learning_rate * s / warmup_steps` while `s < warmup_steps`, then
    Keras's `PolynomialDecay` from `peak_learning_rate` down to
    `end_learning_rate` over the remaining `decay_steps - warmup_steps`
    steps, and `end_learning_rate` from step `decay_steps` on. With
    `warmup_steps=0` and `power=1` this is exactly the reference recipe's
    `PolynomialDecay(peak, decay_steps, end_learning_rate)`: after the last
    of `decay_steps` training steps the optimizer sits at `end_learning_rate`.

    Args:
        peak_learning_rate: the rate reached at the end of warmup.
        decay_steps: the total number of training steps, warmup included.
        warmup_steps: steps of linear warmup, `0 <= warmup_steps <= decay_steps`.
        end_learning_rate: the rate at step `decay_steps` and after.
        power: the polynomial's power (1.0 is linear decay).

    Example:
    ```python
    import keras
    from kgpt2.training import WarmupPolynomialDecay

    schedule = WarmupPolynomialDecay(1e-3, decay_steps=100, warmup_steps=10)
    print([round(float(schedule(step)), 6) for step in (5, 10, 55, 100)])
    # [0.0005, 0.001, 0.0005, 0.0]
    optimizer = keras.optimizers.Adam(schedule)
    ```
    """

    def __init__(
        self,
        peak_learning_rate,
        decay_steps,
        warmup_steps=0,
        end_learning_rate=0.0,
        power=1.0,
        name="warmup_polynomial_decay",
    ):
        super().__init__()
        for label, value in [
            ("peak_learning_rate", peak_learning_rate),
            ("end_learning_rate", end_learning_rate),
            ("power", power),
        ]:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise InputError(f"{label} must be a number >= 0, got {value!r}.")
        if isinstance(decay_steps, bool) or not isinstance(decay_steps, int) or decay_steps < 1:
            raise InputError(f"decay_steps must be an integer >= 1, got {decay_steps!r}.")
        if (
            isinstance(warmup_steps, bool)
            or not isinstance(warmup_steps, int)
            or not 0 <= warmup_steps <= decay_steps
        ):
            raise InputError(
                f"warmup_steps must be an integer in [0, decay_steps={decay_steps}], "
                f"got {warmup_steps!r}."
            )
        self.peak_learning_rate = float(peak_learning_rate)
        self.decay_steps = decay_steps
        self.warmup_steps = warmup_steps
        self.end_learning_rate = float(end_learning_rate)
        self.power = float(power)
        self.name = name
        self._variables = None

    def keep_settings_in(self, optimizer):
        """Hold the rates and step counts in variables of `optimizer`.

        The training step then reads them as state instead of baking them
        into the compiled program, so runs that differ only in steps or
        rates share one program (and JAX's compilation cache). Returns the
        variables; a checkpoint need not save them, since they come from
        the recipe (see `checkpointed_variables`).

        Example:
        ```python
        import keras
        from kgpt2.training import WarmupPolynomialDecay

        schedule = WarmupPolynomialDecay(1e-3, decay_steps=100, warmup_steps=10)
        optimizer = keras.optimizers.Adam(schedule)
        print(len(schedule.keep_settings_in(optimizer)))  # 4
        print(round(float(optimizer.learning_rate), 6))  # 0.0
        ```
        """
        if self._variables is None:
            self._variables = {
                key: optimizer.add_variable(
                    (), initializer=keras.initializers.Constant(value), dtype="float32",
                    name=SETTING_PREFIX + key)
                for key, value in self._values().items()
            }
        return list(self._variables.values())

    def _values(self):
        return {"peak_learning_rate": self.peak_learning_rate, "decay_steps": float(self.decay_steps),
                "warmup_steps": float(self.warmup_steps), "end_learning_rate": self.end_learning_rate}

    def _settings(self):
        """The settings as the step reads them: the variables once kept, else the values."""
        return self._variables if self._variables is not None else self._values()

    def __call__(self, step):
        ops = keras.ops
        settings = {key: ops.convert_to_tensor(value) for key, value in self._settings().items()}
        peak, end = settings["peak_learning_rate"], settings["end_learning_rate"]
        decay_steps, warmup = settings["decay_steps"], settings["warmup_steps"]
        step = ops.cast(step, "float32")
        warming_up = peak * step / ops.maximum(warmup, 1.0)
        # Keras's PolynomialDecay over the steps after warmup (at least one).
        span = ops.maximum(decay_steps - warmup, 1.0)
        progress = ops.minimum(ops.maximum(step - warmup, 0.0), span) / span
        decaying = (peak - end) * ops.power(1.0 - progress, self.power) + end
        # With every step spent on warmup, the decay phase is just the end rate.
        decaying = ops.where(warmup >= decay_steps, end, decaying)
        return ops.where(step < warmup, warming_up, decaying)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "decay_steps": self.decay_steps,
            "warmup_steps": self.warmup_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "name": self.name,
        }
