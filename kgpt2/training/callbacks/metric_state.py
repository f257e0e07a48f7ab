"""Per-step values of Keras's running-mean metrics."""

import keras


class StepMetricReader:
    """Read the last step's own loss and accuracy from a model's metrics.

    Keras logs each metric as its mean since the epoch began. Every such
    metric keeps a running `total` and `count` (the loss is weighted by batch
    size, accuracy by token weights), so their change between two steps is
    the latest step's own value and weight: exact, with no extra compute.

    Example:
    ```python
    from kgpt2.training.callbacks.metric_state import StepMetricReader

    reader = StepMetricReader()
    # in a callback's on_train_batch_end:
    #     value, batch_size = reader.read(self.model)["loss"]
    ```
    """

    def __init__(self):
        self._previous = {}

    def reset(self):
        """Forget the last totals: call when Keras resets metrics (each epoch)."""
        self._previous = {}

    def read(self, model):
        """Return `{metric name: (step value, step weight)}`."""
        values = {}
        for metric in model.metrics:
            # `CompileMetrics` is a container of the compiled metrics.
            for inner in getattr(metric, "metrics", None) or [metric]:
                if not (hasattr(inner, "total") and hasattr(inner, "count")):
                    continue
                total = float(keras.ops.convert_to_numpy(inner.total.value))
                count = float(keras.ops.convert_to_numpy(inner.count.value))
                previous_total, previous_count = self._previous.get(inner.name, (0.0, 0.0))
                if count < previous_count:  # reset since the last read
                    previous_total, previous_count = 0.0, 0.0
                self._previous[inner.name] = (total, count)
                weight = count - previous_count
                if weight > 0:
                    values[inner.name] = ((total - previous_total) / weight, weight)
        return values
