"""Keras callbacks for fine-tuning runs; usable with a plain `lm.fit` too.

Example:
```python
from kgpt2.training.callbacks import MetricsCSV, TokensPerSecond

callbacks = [TokensPerSecond(), MetricsCSV("metrics.csv", print_every=10)]
# lm.fit(dataset, callbacks=callbacks)
```
"""

from kgpt2.training.callbacks.checkpoint import RunCheckpoint
from kgpt2.training.callbacks.interrupt import StopOnInterrupt
from kgpt2.training.callbacks.metrics_csv import MetricsCSV
from kgpt2.training.callbacks.nan_stop import StopOnNaN
from kgpt2.training.callbacks.samples import SampleEvery
from kgpt2.training.callbacks.step import StepCallback
from kgpt2.training.callbacks.tensorboard import TensorBoardLogger
from kgpt2.training.callbacks.throughput import TokensPerSecond

__all__ = [
    "MetricsCSV",
    "RunCheckpoint",
    "SampleEvery",
    "StepCallback",
    "StopOnInterrupt",
    "StopOnNaN",
    "TensorBoardLogger",
    "TokensPerSecond",
]
