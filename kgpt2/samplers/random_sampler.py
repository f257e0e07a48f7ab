"""Sampling from the whole distribution, with min-p and repetition control."""

import keras
import keras_hub

from kgpt2.checks import check_seed
from kgpt2.samplers.min_p_filter import MinPFilter
from kgpt2.samplers.token_rules import TokenRules


@keras.saving.register_keras_serializable(package="kgpt2")
class RandomSampler(TokenRules, MinPFilter, keras_hub.samplers.RandomSampler):
    """Sample the next token from the full softmax distribution.

    A `keras_hub.samplers.RandomSampler` plus `min_p` and the repetition
    options; with the defaults it is KerasHub's sampler exactly, and the same
    `seed` gives the same tokens.

    Args:
        seed: int >= 0 or `None`. Seeds the sampler's `keras.random.SeedGenerator`.
        temperature: float > 0; higher is more diverse.
        min_p: float in [0, 1], `0.0` disables it.
        repetition_penalty: float > 0, `1.0` disables it.
        no_repeat_ngram_size: int >= 0, `0` disables it.
        valid_utf8: bool, only tokens that keep the text valid UTF-8.
        presence_penalty, frequency_penalty, logit_bias: OpenAI's, see
            `TokenRules`.

    Example:
    ```python
    import kgpt2

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    lm.compile(sampler=kgpt2.samplers.RandomSampler(temperature=0.7, seed=1))
    print(lm.generate("The quick brown fox", max_length=24))
    ```
    """

    def __init__(
        self,
        seed=None,
        temperature=1.0,
        min_p=0.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        valid_utf8=False,
        presence_penalty=0.0,
        frequency_penalty=0.0,
        logit_bias=None,
    ):
        check_seed(type(self).__name__, seed)
        super().__init__(
            seed=seed,
            temperature=temperature,
            min_p=min_p,
            repetition_penalty=repetition_penalty,
            no_repeat_ngram_size=no_repeat_ngram_size,
            valid_utf8=valid_utf8,
            presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
            logit_bias=logit_bias,
        )
