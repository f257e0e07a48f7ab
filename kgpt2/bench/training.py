"""Training speed: first-step seconds and steady training tokens/s.

The protocol matches the HF transformers peer script: `steps` optimizer
steps (Adam, every token in the loss) on one fixed batch of random token
ids; step 0 (compilation included) is reported apart, and the steady step
time is the median of the steps after `warmup_steps`. Each step's CPU
seconds (this process, all cores summed) are kept beside its wall-clock
seconds: on a machine shared with other work, tokens per CPU-second is the
steadier figure.
"""

import logging
import statistics
import time

import keras
import numpy as np

from kgpt2.checks import check_integer
from kgpt2.errors import InputError
from kgpt2.training.compiling import compile_lm
from kgpt2.training.preprocessing import detached_preprocessor

logger = logging.getLogger("kgpt2")


def training_batch(batch_size, sequence_length, vocabulary_size, seed=0):
    """Return one preprocessed `(x, y, sample_weight)` batch of random ids.

    It has the structure `GPT2CausalLMPreprocessor` produces, so the model
    trains on it exactly as on real text.

    Example:
    ```python
    from kgpt2.bench.training import training_batch

    x, y, sample_weight = training_batch(2, 8, vocabulary_size=50257)
    print(x["token_ids"].shape, y.shape)  # (2, 8) (2, 8)
    ```
    """
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocabulary_size, size=(batch_size, sequence_length + 1), dtype="int32")
    x = {
        "token_ids": ids[:, :-1],
        "padding_mask": np.ones((batch_size, sequence_length), bool),
    }
    return x, ids[:, 1:], np.ones((batch_size, sequence_length), "float32")


def _check(lm, batch_size, sequence_length, steps, warmup_steps):
    check_integer("training", "batch_size", batch_size, minimum=1)
    check_integer("training", "sequence_length", sequence_length, minimum=2)
    check_integer("training", "warmup_steps", warmup_steps, minimum=1)
    check_integer("training", "steps", steps, minimum=warmup_steps + 1)
    model_max = lm.backbone.max_sequence_length
    if sequence_length > model_max:
        raise InputError(
            f"training sequence_length {sequence_length} is longer than the "
            f"model's {model_max} positions."
        )


def bench_training(lm, batch_size=8, sequence_length=128, steps=7, warmup_steps=2,
                   mixed_precision=False):
    """Measure training step time and tokens/s of `lm` (this changes its weights).

    The model is compiled with `kgpt2.compile_lm` (Adam, learning rate 5e-5,
    `SparseCategoricalCrossentropy(from_logits=True)`, accuracy; `mixed_precision` as there) and
    trained with Keras's `train_on_batch`; each step's time ends when its
    loss has been read, so a step that fails raises its error. One line
    goes to the "kgpt2" logger.

    Returns:
        A dict (see `training_row`) with every step's wall-clock and CPU
        seconds (`step_s`, `cpu_step_s`), `first_step_s`, `steady_step_s`
        (median after warm-up), `tokens` per step, `steady_tok_per_s`
        (= tokens / steady_step_s), `steady_tok_per_cpu_s` and `precision`
        (the compute dtype policy: "float32" or "mixed_bfloat16").

    Example:
    ```python
    import kgpt2
    from kgpt2.bench.training import bench_training

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    row = bench_training(lm, batch_size=2, sequence_length=16, steps=3, warmup_steps=1)
    print(row["steady_tok_per_s"] > 0)  # True
    ```
    """
    _check(lm, batch_size, sequence_length, steps, warmup_steps)
    x, y, sample_weight = training_batch(batch_size, sequence_length, lm.backbone.vocabulary_size)
    compile_lm(lm, learning_rate=5e-5, steps=steps, mixed_precision=mixed_precision)
    precision = lm.backbone.dtype_policy.name
    seconds, cpu_seconds = [], []
    with detached_preprocessor(lm):
        for _ in range(steps):
            start, cpu_start = time.perf_counter(), time.process_time()
            logs = lm.train_on_batch(x, y, sample_weight=sample_weight, return_dict=True)
            # Keras returns a log it could not convert to float as it is, so
            # a step that failed on the device would pass unnoticed, timed at
            # its dispatch: reading the loss raises the step's error.
            float(logs["loss"])
            seconds.append(time.perf_counter() - start)
            cpu_seconds.append(time.process_time() - cpu_start)
    row = training_row(
        seconds,
        warmup_steps=warmup_steps,
        cpu_step_seconds=cpu_seconds,
        impl="kgpt2",
        backend=keras.config.backend(),
        precision=precision,
        batch=batch_size,
        sequence_length=sequence_length,
    )
    logger.info(
        "  train    %-10s %-9s %s batch %d x %d  first %7.2f s  steady %.3f s/step  %8.1f tok/s",
        row["backend"], "kgpt2", precision, batch_size, sequence_length, row["first_step_s"],
        row["steady_step_s"], row["steady_tok_per_s"],
    )
    return row


def training_row(step_seconds, warmup_steps, batch, sequence_length, cpu_step_seconds=None,
                 **fields):
    """Summarise the seconds of each training step as a result row.

    `cpu_step_seconds`, when known, adds `cpu_step_s` and
    `steady_tok_per_cpu_s` (tokens over the median CPU seconds after warm-up).

    Example:
    ```python
    from kgpt2.bench.training import training_row

    row = training_row([9.0, 2.0, 1.0, 3.0, 2.0], warmup_steps=2, batch=2, sequence_length=4)
    print(row["steady_step_s"], row["steady_tok_per_s"])  # 2.0 4.0
    ```
    """
    tokens = batch * sequence_length
    steady = statistics.median(step_seconds[warmup_steps:])
    row = {
        "what": "train",
        **fields,
        "batch": batch,
        "sequence_length": sequence_length,
        "tokens": tokens,
        "warmup_steps": warmup_steps,
        "step_s": list(step_seconds),
        "first_step_s": step_seconds[0],
        "steady_step_s": steady,
        "steady_tok_per_s": tokens / steady,
        "first_over_steady": step_seconds[0] / steady,
    }
    if cpu_step_seconds is not None:
        row["cpu_step_s"] = list(cpu_step_seconds)
        row["steady_tok_per_cpu_s"] = tokens / statistics.median(cpu_step_seconds[warmup_steps:])
    return row
