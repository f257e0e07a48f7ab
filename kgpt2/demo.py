"""`kgpt2 demo`: fine-tune briefly on Tang poems and generate, offline.

The demo is the tour of kgpt2 in one call: load a preset, build a data
pipeline from the Tang poem sample shipped in the package, fine-tune with
polynomial-decay Adam while printing the loss, then generate with two
samplers and report tokens per second.
"""

import json
import time
from importlib import resources


def sample_poems_path():
    """Return the path of the Tang poem sample shipped with kgpt2.

    400 short poems from the chinese-poetry repository (MIT license, kept
    beside the file with its SOURCE.md).

    Example:
    ```python
    from kgpt2.demo import sample_poems_path

    print(sample_poems_path().name)  # poet.tang.sample.json
    ```
    """
    return resources.files("kgpt2") / "assets" / "tang_sample" / "poet.tang.sample.json"


def _sample_texts():
    import opencc

    to_simplified = opencc.OpenCC("t2s")
    records = json.loads(sample_poems_path().read_text("utf-8"))
    return [to_simplified.convert("".join(r["paragraphs"])) for r in records]


def run(
    preset="gpt2_tiny_random",
    steps=120,
    batch_size=8,
    sequence_length=64,
    learning_rate=None,
    prompt="春眠不觉晓",
    max_length=48,
    print_fn=print,
):
    """Fine-tune `preset` on the bundled Tang poems and generate from `prompt`.

    Args:
        preset: any name `kgpt2.load` accepts.
        steps: training steps.
        batch_size, sequence_length: the training batch shape.
        learning_rate: peak of the polynomial decay; defaults to 2e-3 for
            randomly initialised presets (they start from nothing) and 5e-5
            for pretrained ones (the reference recipe).
        prompt: the generation prompt.
        max_length: generated sequence length in tokens, prompt included.
        print_fn: where progress lines go.

    Returns:
        A dict with `losses` (per logged step), `samples` (sampler name ->
        text) and `tokens_per_second` (sampler name -> float).

    Example:
    ```python
    from kgpt2.demo import run

    result = run(steps=20, print_fn=lambda *a: None)
    print(result["losses"][0] > result["losses"][-1])
    ```
    """
    import keras
    import keras_hub
    import tensorflow as tf

    import kgpt2

    if learning_rate is None:
        learning_rate = 2e-3 if preset.endswith("_random") else 5e-5
    print_fn(f"Loading {preset} (Keras backend: {keras.config.backend()})")
    lm = kgpt2.load(preset, sequence_length=sequence_length)
    texts = _sample_texts()
    print_fn(f"Fine-tuning on {len(texts)} Tang poems for {steps} steps "
             f"(batch {batch_size} x {sequence_length} tokens)")
    dataset = (
        tf.data.Dataset.from_tensor_slices(texts)
        .shuffle(len(texts), seed=0)
        .repeat()
        .batch(batch_size)
        .take(steps)
        .prefetch(tf.data.AUTOTUNE)
    )
    schedule = keras.optimizers.schedules.PolynomialDecay(
        learning_rate, decay_steps=steps, end_learning_rate=0.0
    )
    lm.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=["accuracy"],
    )
    losses = []

    class PrintLoss(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch % max(1, steps // 10) == 0 or batch == steps - 1:
                losses.append(float(logs["loss"]))
                print_fn(f"  step {batch + 1:>4}/{steps}  loss {losses[-1]:.3f}")

    lm.fit(dataset, epochs=1, verbose=0, callbacks=[PrintLoss()])

    samples, speeds = {}, {}
    for name, sampler in [
        ("greedy", keras_hub.samplers.GreedySampler()),
        ("top_k", keras_hub.samplers.TopKSampler(k=10, seed=0)),
    ]:
        lm.compile(sampler=sampler)
        lm.generate(prompt, max_length=max_length)  # compile once
        start = time.perf_counter()
        text = lm.generate(prompt, max_length=max_length)
        seconds = time.perf_counter() - start
        new_tokens = max_length - len(lm.preprocessor.tokenizer(prompt))
        samples[name] = text
        speeds[name] = new_tokens / seconds
        print_fn(f"[{name}] {text}")
        print_fn(f"[{name}] {speeds[name]:.1f} tokens/s")
    return {"losses": losses, "samples": samples, "tokens_per_second": speeds}
