"""How many steps a run takes, and how to split a (resumed) run into `fit` calls."""

import dataclasses
import math

from kgpt2.errors import InputError


def _positive_int(value, label):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{label} must be an integer >= 1, got {value!r}.")
    return value


def count_steps(dataset=None, epochs=None, steps=None):
    """Return `(total_steps, steps_per_epoch)` of a training run.

    One epoch is one pass over `dataset` unless both `steps` and `epochs`
    are given. Without `steps`, the run is `epochs` passes (default 1), and
    `dataset`'s cardinality must be known: a dataset of unknown or infinite
    length (e.g. after `filter` or `repeat()`) needs `steps`. With `steps`
    alone, the run is `steps` batches long in epochs of one pass each (the
    last one shorter), or a single epoch when the dataset's length is
    unknown or infinite. With both, the `steps` are split into `epochs`
    equal Keras epochs (validation runs after each).

    Raises:
        ValueError: no `steps` and no dataset, a dataset of unknown, infinite
            or zero length, or a non-positive `steps`/`epochs`.

    Example:
    ```python
    import tensorflow as tf
    from kgpt2.training.steps import count_steps

    dataset = tf.data.Dataset.from_tensor_slices(["a", "b", "c"]).batch(2)
    print(count_steps(dataset, epochs=3))  # (6, 2)
    print(count_steps(dataset, steps=5))  # (5, 2)
    print(count_steps(steps=10, epochs=2))  # (10, 5)
    ```
    """
    if epochs is not None:
        _positive_int(epochs, "epochs")
    if steps is not None:
        _positive_int(steps, "steps")
        if epochs is not None:
            if epochs > steps:
                raise InputError(f"epochs={epochs} is more than steps={steps}: each epoch needs a step.")
            return steps, math.ceil(steps / epochs)
        per_pass = batches_per_pass(dataset) if dataset is not None else None
        return steps, min(per_pass or steps, steps)
    if dataset is None:
        raise InputError(
            "Pass steps=N (total training steps), or a dataset of known "
            "length so that steps = len(dataset) x epochs."
        )
    import tensorflow as tf

    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise InputError(
            "The training dataset is infinite (it repeats), so the number of "
            "steps can't be derived from epochs: pass steps=N (total training steps)."
        )
    if cardinality == tf.data.UNKNOWN_CARDINALITY:
        raise InputError(
            "The training dataset's length is unknown to tf.data (e.g. after "
            "filter() or from a generator), so the number of steps can't be "
            "derived from epochs: pass steps=N (total training steps), or "
            "dataset.apply(tf.data.experimental.assert_cardinality(n))."
        )
    if cardinality == 0:
        raise InputError("The training dataset is empty: it yields no batches.")
    return cardinality * (epochs or 1), cardinality


def batches_per_pass(dataset):
    """The number of batches in one pass over `dataset`, or None if unknown or infinite.

    Example:
    ```python
    import tensorflow as tf
    from kgpt2.training.steps import batches_per_pass

    print(batches_per_pass(tf.data.Dataset.range(5).batch(2)))  # 3
    print(batches_per_pass(tf.data.Dataset.range(5).repeat()))  # None
    ```
    """
    cardinality = int(dataset.cardinality())
    return cardinality if cardinality > 0 else None


@dataclasses.dataclass(frozen=True)
class FitSegment:
    """One `lm.fit` call: `epochs - initial_epoch` epochs of `steps_per_epoch`."""

    first_step: int
    initial_epoch: int
    epochs: int
    steps_per_epoch: int

    @property
    def steps(self):
        return (self.epochs - self.initial_epoch) * self.steps_per_epoch


def fit_segments(start_step, total_steps, steps_per_epoch):
    """Split steps `start_step..total_steps` into `fit` calls on epoch bounds.

    Keras can start `fit` at an epoch (`initial_epoch`) but not mid-epoch,
    and every epoch of one call has the same length. A run resumed mid-epoch
    therefore finishes that epoch in one call, runs the whole epochs in a
    second, and a shorter last epoch (when `total_steps` is not a multiple
    of `steps_per_epoch`) in a third. Epoch numbers and boundaries are the
    same as in an uninterrupted run.

    Example:
    ```python
    from kgpt2.training.steps import fit_segments

    for segment in fit_segments(start_step=5, total_steps=23, steps_per_epoch=4):
        print(segment.first_step, segment.initial_epoch, segment.epochs, segment.steps)
    # 5 1 2 3
    # 8 2 5 12
    # 20 5 6 3
    ```
    """
    segments = []
    step = start_step
    while step < total_steps:
        epoch, offset = divmod(step, steps_per_epoch)
        epoch_end = min((epoch + 1) * steps_per_epoch, total_steps)
        if offset or epoch_end - step < steps_per_epoch:
            # A partial epoch: its own call.
            length = epoch_end - step
            segments.append(FitSegment(step, epoch, epoch + 1, length))
        else:
            whole = (total_steps - step) // steps_per_epoch
            length = whole * steps_per_epoch
            segments.append(FitSegment(step, epoch, epoch + whole, steps_per_epoch))
        step += length
    return segments
