"""Greedy search with repetition control."""

import keras
import keras_hub

from kgpt2.samplers.token_rules import TokenRules


@keras.saving.register_keras_serializable(package="kgpt2")
class GreedySampler(TokenRules, keras_hub.samplers.GreedySampler):
    """Always pick the most likely token, optionally avoiding repeats.

    A `keras_hub.samplers.GreedySampler` plus `TokenRules` (repetition,
    UTF-8); with the defaults it is KerasHub's sampler exactly.
    Plain greedy search on GPT-2 tends to loop: `no_repeat_ngram_size=3`
    rules the loop out, `repetition_penalty` only makes repeats less likely
    (a model sure enough of its loop can overcome it).

    Args:
        temperature: float > 0 (no effect on which token is the most likely).
        repetition_penalty: float > 0, `1.0` disables it.
        no_repeat_ngram_size: int >= 0, `0` disables it.
        valid_utf8: bool, only tokens that keep the text valid UTF-8.
        presence_penalty, frequency_penalty, logit_bias: OpenAI's, see
            `TokenRules`.

    Example:
    ```python
    import kgpt2

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    lm.compile(sampler=kgpt2.samplers.GreedySampler(no_repeat_ngram_size=3))
    print(lm.generate("The quick brown fox", max_length=24))
    ```
    """

    def __init__(self, temperature=1.0, repetition_penalty=1.0, no_repeat_ngram_size=0,
                 valid_utf8=False, presence_penalty=0.0,
                 frequency_penalty=0.0, logit_bias=None):
        super().__init__(
            temperature=temperature,
            repetition_penalty=repetition_penalty,
            no_repeat_ngram_size=no_repeat_ngram_size,
            valid_utf8=valid_utf8,
            presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
            logit_bias=logit_bias,
        )
