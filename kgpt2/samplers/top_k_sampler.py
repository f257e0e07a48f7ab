"""Top-k sampling with min-p and repetition control."""

import keras
import keras_hub

from kgpt2.checks import check_number
from kgpt2.checks import check_seed
from kgpt2.samplers.min_p_filter import MinPFilter
from kgpt2.samplers.token_rules import TokenRules


@keras.saving.register_keras_serializable(package="kgpt2")
class TopKSampler(TokenRules, MinPFilter, keras_hub.samplers.TopKSampler):
    """Sample the next token among the `k` most likely ones.

    A `keras_hub.samplers.TopKSampler` plus `min_p` and the repetition
    options; with the defaults it is KerasHub's sampler exactly. The top `k`
    are taken after the repetition penalty, as in Hugging Face.

    Args:
        k: int >= 1 (at most the vocabulary size).
        seed: int >= 0 or `None`.
        temperature: float > 0.
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
    lm.compile(sampler=kgpt2.samplers.TopKSampler(k=40, seed=1))
    print(lm.generate("The quick brown fox", max_length=24))
    ```
    """

    def __init__(
        self,
        k=5,
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
        check_number(type(self).__name__, "k", k, minimum=1, integer=True)
        check_seed(type(self).__name__, seed)
        super().__init__(
            k=k,
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
