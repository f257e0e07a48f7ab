"""`SampleEvery`: generate a sample every N steps, to watch the model learn."""

import pathlib

from kgpt2.errors import InputError
from kgpt2.training.callbacks.step import StepCallback
from kgpt2.training.preprocessing import attached_preprocessor


class SampleEvery(StepCallback):
    """Every `every` steps, `model.generate(prompt)` and record the text.

    Uses the model's compiled sampler. Samples are printed and appended to
    `path` under a `======== step N ========` header.

    Args:
        every: steps between samples.
        prompt: the prompt; `""` samples unconditionally.
        max_length: generated length in tokens, prompt included (defaults to
            the preprocessor's sequence length).
        path: a text file to append samples to, or None.
        initial_step: the step training starts after (for resumed runs).
        preprocessor: the preprocessor to generate with when it is detached
            from the model during training (tokenized datasets).
        print_fn: where samples are printed.

    Example:
    ```python
    import kgpt2, tensorflow as tf
    from kgpt2.training.callbacks import SampleEvery

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    sampler = SampleEvery(every=2, prompt="The", max_length=8)
    texts = tf.data.Dataset.from_tensor_slices(["a b c"] * 8).batch(4)
    lm.fit(texts, epochs=1, verbose=0, callbacks=[sampler])
    print(len(sampler.samples))  # 1: (step, text) at step 2
    ```
    """

    def __init__(
        self,
        every,
        prompt="",
        max_length=None,
        path=None,
        initial_step=0,
        preprocessor=None,
        print_fn=print,
    ):
        super().__init__(initial_step)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise InputError(f"sample_every must be an integer >= 1, got {every!r}.")
        self.every = every
        self.prompt = prompt
        self.max_length = max_length
        self.path = pathlib.Path(path) if path is not None else None
        self.preprocessor = preprocessor
        self.print_fn = print_fn
        self.samples = []

    def on_step_end(self, step, logs):
        if step % self.every or self.model.stop_training:
            return
        model = self.model  # syncs JAX state into the model's variables
        with attached_preprocessor(model, self.preprocessor):
            text = model.generate(self.prompt, max_length=self.max_length)
        self.samples.append((step, text))
        block = f"======== step {step} ========\n{text}\n"
        self.print_fn(block.rstrip("\n"))
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(block)
