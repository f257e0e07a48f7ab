"""`SampleEvery`: generate a sample every N steps, to watch the model learn."""

import logging
import pathlib

from kgpt2.checks import check_integer
from kgpt2.presets.tokenizer import decode_tokens
from kgpt2.training.callbacks.step import StepCallback
from kgpt2.training.distribution import outside_distribution
from kgpt2.training.preprocessing import attached_preprocessor

log = logging.getLogger(__name__)


class SampleEvery(StepCallback):
    """Every `every` steps (and at `total_steps`), `model.generate(prompt)` and record the text.

    Uses the model's compiled sampler. Samples are logged and appended to
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
        total_steps: the run's last step, also sampled; None: only every
            `every` steps.

    Example:
    ```python
    import kgpt2, tensorflow as tf
    from kgpt2.training.callbacks import SampleEvery

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    sampler = SampleEvery(every=2, prompt="The", max_length=8)
    texts = tf.data.Dataset.from_tensor_slices(["a b c"] * 8).batch(4)
    lm.fit(texts, epochs=1, verbose=0, callbacks=[sampler])
    # (step, text) pairs
    print(sampler.samples)
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
        total_steps=None,
    ):
        super().__init__(initial_step)
        check_integer("SampleEvery", "sample_every", every, minimum=1)
        self.every = every
        self.prompt = prompt
        self.max_length = max_length
        self.path = pathlib.Path(path) if path is not None else None
        self.preprocessor = preprocessor
        self.total_steps = total_steps
        self.samples = []

    def _generate(self, model):
        """One sample, decoded from its token ids so split characters survive.

        `model.generate` decodes a cut-off last character to U+FFFD; the
        ids go through `decode_tokens` instead.

        Training runs inside its distribution's scope, where `generate`
        would split the prompt's batch of 1 over the devices like a
        training batch: it runs outside, each device generating the whole
        sample with the weights laid out as they are.
        """
        import numpy as np

        preprocessor = model.preprocessor
        inputs = preprocessor.generate_preprocess(
            [self.prompt], sequence_length=self.max_length or preprocessor.sequence_length
        )
        model.preprocessor = None  # generate() then returns token ids
        try:
            with outside_distribution():
                outputs = model.generate(inputs, stop_token_ids=[preprocessor.tokenizer.end_token_id])
        finally:
            model.preprocessor = preprocessor
        tokenizer = preprocessor.tokenizer
        ids = np.asarray(outputs["token_ids"][0])[np.asarray(outputs["padding_mask"][0], bool)]
        specials = {tokenizer.start_token_id, tokenizer.end_token_id, tokenizer.pad_token_id}
        kept = []
        for position, token_id in enumerate(ids.tolist()):
            if token_id == tokenizer.end_token_id and position > 0:
                break  # the end of the sample
            if token_id not in specials:
                kept.append(token_id)
        return decode_tokens(tokenizer, kept)

    def on_step_end(self, step, logs):
        due = step % self.every == 0 or step == self.total_steps
        if not due or self.model.stop_training:
            return
        model = self.model  # syncs JAX state into the model's variables
        with attached_preprocessor(model, self.preprocessor):
            text = self._generate(model)
        self.samples.append((step, text))
        block = f"======== step {step} ========\n{text}\n"
        log.info(block.rstrip("\n"))
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(block)
