"""Training speed: first-step seconds and steady training tokens/s.

The protocol matches the HF transformers peer script: `steps` optimizer
steps (Adam, every token in the loss) on one fixed batch of random token
ids; step 0 (compilation included) is reported apart, and the steady step
time is the median of the steps after `warmup_steps`.
"""

import statistics
import time

from kgpt2.bench.model import detached_preprocessor
from kgpt2.errors import InputError


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
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocabulary_size, size=(batch_size, sequence_length + 1), dtype="int32")
    x = {
        "token_ids": ids[:, :-1],
        "padding_mask": np.ones((batch_size, sequence_length), bool),
    }
    return x, ids[:, 1:], np.ones((batch_size, sequence_length), "float32")


def bench_training(lm, batch_size=8, sequence_length=128, steps=7, warmup_steps=2, print_fn=print):
    """Measure training step time and tokens/s of `lm` (this changes its weights).

    The model is compiled with `kgpt2.compile` (Adam, learning rate 5e-5,
    `SparseCategoricalCrossentropy(from_logits=True)`, accuracy) and trained
    with Keras's `train_on_batch`, which returns only when the step is done.

    Returns:
        A dict with every step's seconds (`step_s`), `first_step_s`,
        `steady_step_s` (median after warm-up), `tokens` per step and
        `steady_tok_per_s` (= tokens / steady_step_s).

    Example:
    ```python
    import kgpt2
    from kgpt2.bench.training import bench_training

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    row = bench_training(lm, batch_size=2, sequence_length=16, steps=3, warmup_steps=1)
    print(row["steady_tok_per_s"] > 0)  # True
    ```
    """
    import keras

    import kgpt2

    for name, value, low in [("batch_size", batch_size, 1), ("sequence_length", sequence_length, 2),
                             ("warmup_steps", warmup_steps, 1)]:
        if not isinstance(value, int) or value < low:
            raise InputError(f"training {name} must be an integer >= {low}, got {value!r}.")
    if not isinstance(steps, int) or steps <= warmup_steps:
        raise InputError(
            f"training steps must be an integer > warmup_steps ({warmup_steps}), got {steps!r}."
        )
    model_max = lm.backbone.max_sequence_length
    if sequence_length > model_max:
        raise InputError(
            f"training sequence_length {sequence_length} is longer than the "
            f"model's {model_max} positions."
        )
    x, y, sample_weight = training_batch(batch_size, sequence_length, lm.backbone.vocabulary_size)
    kgpt2.compile(lm, learning_rate=5e-5, steps=steps)
    seconds = []
    with detached_preprocessor(lm):
        for _ in range(steps):
            start = time.perf_counter()
            lm.train_on_batch(x, y, sample_weight=sample_weight)
            seconds.append(time.perf_counter() - start)
    row = training_row(
        seconds,
        warmup_steps=warmup_steps,
        impl="kgpt2",
        backend=keras.config.backend(),
        batch=batch_size,
        sequence_length=sequence_length,
    )
    print_fn(
        f"  train    {row['backend']:<10} {'kgpt2':<9} batch {batch_size} x {sequence_length}  "
        f"first {row['first_step_s']:7.2f} s  steady {row['steady_step_s']:.3f} s/step  "
        f"{row['steady_tok_per_s']:8.1f} tok/s"
    )
    return row


def training_row(step_seconds, warmup_steps, batch, sequence_length, **fields):
    """Summarise the seconds of each training step as a result row.

    Example:
    ```python
    from kgpt2.bench.training import training_row

    row = training_row([9.0, 2.0, 1.0, 3.0, 2.0], warmup_steps=2, batch=2, sequence_length=4)
    print(row["steady_step_s"], row["steady_tok_per_s"])  # 2.0 4.0
    ```
    """
    tokens = batch * sequence_length
    steady = statistics.median(step_seconds[warmup_steps:])
    return {
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
