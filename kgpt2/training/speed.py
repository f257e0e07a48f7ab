"""Measure training throughput: `python -m kgpt2.training.speed`.

Trains a preset on random token ids with the fine-tuning recipe and
reports tokens/s as `TokensPerSecond` measures it during `kgpt2.finetune`
(step time only; compiling steps excluded). The Keras backend is the one
`import kgpt2` picks: set `KERAS_BACKEND=tensorflow` to measure TensorFlow.
"""

import argparse
import os
import time

import keras


class CPUTime(keras.callbacks.Callback):
    """This process's CPU seconds over the training steps after the first."""

    def __init__(self):
        super().__init__()
        self.seconds = 0.0
        self._step = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._started = time.process_time()

    def on_train_batch_end(self, batch, logs=None):
        float(logs["loss"])  # wait for the step
        self._step += 1
        if self._step > 1:  # the first step compiles
            self.seconds += time.process_time() - self._started


def training_tokens_per_second(
    preset="gpt2_base_random",
    batch_size=8,
    sequence_length=128,
    steps=10,
    **compile_options,
):
    """Train `steps` steps of `preset` on random tokens; return tokens/s.

    Args:
        preset: any name `kgpt2.load` accepts.
        batch_size, sequence_length: the batch shape.
        steps: measured steps; one more runs first to compile.
        **compile_options: passed to `kgpt2.compile` (e.g. `lora_rank`,
            `mixed_precision`, `gradient_accumulation_steps`).

    Returns:
        `(tokens_per_second, tokens_per_cpu_second)`: wall-clock throughput,
        and tokens per second of this process's CPU time (all cores summed).
        On a machine shared with other work the second is the steadier one:
        times the number of idle cores, it bounds what they would reach.

    Example:
    ```python
    from kgpt2.training.speed import training_tokens_per_second

    wall, cpu = training_tokens_per_second("gpt2_tiny_random", 4, 32, steps=3)
    print(wall > 0 and cpu > 0)  # True
    ```
    """
    import keras
    import numpy as np
    import tensorflow as tf

    import kgpt2
    from kgpt2.training.callbacks import TokensPerSecond
    from kgpt2.training.preprocessing import detached_preprocessor

    lm = kgpt2.load(preset, sequence_length=sequence_length)
    kgpt2.compile(lm, steps=steps + 1, learning_rate=1e-5, **compile_options)
    vocabulary = lm.preprocessor.tokenizer.vocabulary_size()
    token_ids = np.random.default_rng(0).integers(0, vocabulary, (batch_size, sequence_length + 1))
    batch = (
        {
            "token_ids": token_ids[:, :-1].astype("int32"),
            "padding_mask": np.ones((batch_size, sequence_length), "bool"),
        },
        token_ids[:, 1:].astype("int32"),
        np.ones((batch_size, sequence_length), "float32"),
    )
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    meter = TokensPerSecond(sequence_length)
    cpu = CPUTime()
    with detached_preprocessor(lm):
        keras.Model.fit(lm, dataset, steps_per_epoch=steps + 1, callbacks=[meter, cpu], verbose=0)
    return meter.tokens_per_second, steps * batch_size * sequence_length / cpu.seconds


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m kgpt2.training.speed",
        description="Measure kgpt2 fine-tuning throughput (tokens/s) on random tokens.",
    )
    parser.add_argument("--preset", default="gpt2_base_random")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="measure this many times")
    args = parser.parse_args(argv)

    for _ in range(args.repeats):
        wall, cpu = training_tokens_per_second(
            args.preset, args.batch_size, args.sequence_length, args.steps
        )
        print(
            f"{args.preset} batch {args.batch_size} x {args.sequence_length}, "
            f"Keras backend {keras.config.backend()}: {wall:,.1f} training tokens/s, "
            f"{cpu:,.1f} tokens per CPU-second ({args.steps} steps, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})"
        )


if __name__ == "__main__":
    main()
