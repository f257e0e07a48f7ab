"""Contrastive search with repetition control."""

import keras
import keras_hub

from kgpt2.checks import check_number
from kgpt2.samplers.token_rules import TokenRules


@keras.saving.register_keras_serializable(package="kgpt2")
class ContrastiveSampler(TokenRules, keras_hub.samplers.ContrastiveSampler):
    """Pick among the top `k` tokens, trading probability against similarity.

    A `keras_hub.samplers.ContrastiveSampler` (Su et al., 2022) plus
    `TokenRules` (repetition, UTF-8), applied to the logits the candidates are chosen from
    (including the look-ahead logits); with the defaults it is KerasHub's
    sampler exactly.

    Args:
        k: int >= 1, the number of candidates.
        alpha: float in [0, 1], the weight of the similarity penalty.
        temperature: float > 0.
        repetition_penalty: float > 0, `1.0` disables it.
        no_repeat_ngram_size: int >= 0, `0` disables it.
        valid_utf8: bool, only tokens that keep the text valid UTF-8.
        presence_penalty, frequency_penalty, logit_bias: OpenAI's, see
            `TokenRules`.

    Example:
    ```python
    import kgpt2

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    lm.compile(sampler=kgpt2.samplers.ContrastiveSampler(k=4, alpha=0.6))
    print(lm.generate("The quick brown fox", max_length=24))
    ```
    """

    def __init__(
        self,
        k=5,
        alpha=0.6,
        temperature=1.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        valid_utf8=False,
        presence_penalty=0.0,
        frequency_penalty=0.0,
        logit_bias=None,
    ):
        owner = type(self).__name__
        check_number(owner, "k", k, minimum=1, integer=True)
        check_number(owner, "alpha", alpha, minimum=0, maximum=1)
        super().__init__(
            k=k,
            alpha=alpha,
            temperature=temperature,
            repetition_penalty=repetition_penalty,
            no_repeat_ngram_size=no_repeat_ngram_size,
            valid_utf8=valid_utf8,
            presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
            logit_bias=logit_bias,
        )
