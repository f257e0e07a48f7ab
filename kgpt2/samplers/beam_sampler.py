"""Beam search with repetition control."""

import keras
import keras_hub

from kgpt2.checks import check_number
from kgpt2.samplers.token_rules import TokenRules


@keras.saving.register_keras_serializable(package="kgpt2")
class BeamSampler(TokenRules, keras_hub.samplers.BeamSampler):
    """Keep the `num_beams` most likely sequences; return the best one.

    A `keras_hub.samplers.BeamSampler` plus `TokenRules` (repetition, UTF-8), applied
    to every beam on its own tokens (as Hugging Face does); with the defaults
    it is KerasHub's sampler exactly.

    Args:
        num_beams: int >= 1.
        return_all_beams: bool. KerasHub's option to return every beam and
            its score; `lm.generate` needs `False` (the default).
        temperature: float > 0 (it changes the beam scores).
        repetition_penalty: float > 0, `1.0` disables it.
        no_repeat_ngram_size: int >= 0, `0` disables it.
        valid_utf8: bool, only tokens that keep the text valid UTF-8.
        presence_penalty, frequency_penalty, logit_bias: OpenAI's, see
            `TokenRules`.

    Example:
    ```python
    import kgpt2

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    lm.compile(sampler=kgpt2.samplers.BeamSampler(num_beams=4,
                                                  no_repeat_ngram_size=3))
    print(lm.generate("The quick brown fox", max_length=24))
    ```
    """

    def __init__(
        self,
        num_beams=5,
        return_all_beams=False,
        temperature=1.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        valid_utf8=False,
        presence_penalty=0.0,
        frequency_penalty=0.0,
        logit_bias=None,
    ):
        check_number(type(self).__name__, "num_beams", num_beams, minimum=1,
                     integer=True)
        super().__init__(
            num_beams=num_beams,
            return_all_beams=bool(return_all_beams),
            temperature=temperature,
            repetition_penalty=repetition_penalty,
            no_repeat_ngram_size=no_repeat_ngram_size,
            valid_utf8=valid_utf8,
            presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
            logit_bias=logit_bias,
        )
