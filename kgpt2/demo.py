"""`kgpt2 demo`: fine-tune briefly on Tang poems and generate, offline.

The demo is the tour of kgpt2 in one call: load a preset, build a data
pipeline from the Tang poem sample shipped in the package, fine-tune with
polynomial-decay Adam while printing the loss, then generate with two
samplers and report tokens per second.
"""

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
    import tempfile

    import keras

    import kgpt2
    from kgpt2.training.recipe import default_learning_rate

    if learning_rate is None:
        learning_rate = default_learning_rate(preset)
    print_fn(f"Loading {preset} (Keras backend: {keras.config.backend()})")
    lm = kgpt2.load(preset, sequence_length=sequence_length)
    train = kgpt2.data.poetry(
        sample_poems_path(), to_simplified=True, batch_size=batch_size,
        pack=True, sequence_length=sequence_length,
        tokenizer=lm.preprocessor.tokenizer,
    )
    print_fn(f"Fine-tuning on 400 Tang poems (Simplified, packed) for {steps} "
             f"steps (batch {batch_size} x {sequence_length} tokens)")
    losses = []

    class RecordLoss(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float(logs["loss"]))

    with tempfile.TemporaryDirectory() as checkpoints:
        kgpt2.finetune(
            lm, train.repeat(), recipe=kgpt2.Recipe(steps=steps, learning_rate=learning_rate),
            run_name="demo", checkpoint_dir=checkpoints, restore_from="fresh",
            save_every=steps, print_every=max(1, steps // 10), sample_every=0,
            callbacks=[RecordLoss()],
        )

    samples, speeds = {}, {}
    for name, sampler in [
        ("greedy, no 3-gram twice", kgpt2.samplers.get("greedy", no_repeat_ngram_size=3)),
        ("top_k", kgpt2.samplers.get("top_k", k=10, seed=0)),
    ]:
        kgpt2.generate(lm, prompt, sampler=sampler, max_length=max_length)  # compile once
        start = time.perf_counter()
        text = kgpt2.generate(lm, prompt, sampler=sampler, max_length=max_length,
                              stop_token_ids=None)[0]
        seconds = time.perf_counter() - start
        new_tokens = max_length - len(lm.preprocessor.tokenizer(prompt))
        samples[name] = text
        speeds[name] = new_tokens / seconds
        print_fn(f"[{name}] {text}")
        print_fn(f"[{name}] {speeds[name]:.1f} tokens/s")
    return {"losses": losses, "samples": samples, "tokens_per_second": speeds}
