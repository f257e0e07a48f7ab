"""Top-p (nucleus) sampling with min-p and repetition control."""

import keras
import keras_hub
from keras import ops

from kgpt2.checks import check_number
from kgpt2.checks import check_seed
from kgpt2.samplers.min_p_filter import MinPFilter
from kgpt2.samplers.nucleus import draw
from kgpt2.samplers.nucleus import nucleus_mask
from kgpt2.samplers.token_rules import TokenRules


@keras.saving.register_keras_serializable(package="kgpt2")
class TopPSampler(TokenRules, MinPFilter, keras_hub.samplers.TopPSampler):
    """Sample from the smallest set of tokens whose probability exceeds `p`.

    A `keras_hub.samplers.TopPSampler` plus `min_p` and the repetition
    options. It keeps the same tokens as KerasHub's sampler and draws from
    them with the same probabilities, but finds them without sorting the
    vocabulary (`kgpt2.samplers.nucleus`), which makes it about as fast as
    greedy decoding; with `k` set it is KerasHub's sort of the top `k`.

    Args:
        p: float in (0, 1].
        k: int >= 1 or `None`: only consider the `k` most likely tokens
            before the top-p cut (KerasHub's option).
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
    lm.compile(sampler=kgpt2.samplers.TopPSampler(p=0.9, seed=1))
    print(lm.generate("The quick brown fox", max_length=24))
    ```
    """

    def __init__(
        self,
        p=0.1,
        k=None,
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
        owner = type(self).__name__
        check_number(owner, "p", p, minimum=0, maximum=1, exclusive_minimum=True)
        if k is not None:
            check_number(owner, "k", k, minimum=1, integer=True)
        check_seed(owner, seed)
        super().__init__(
            p=p,
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

    def get_next_token(self, probabilities):
        if self.k is not None:
            return super().get_next_token(probabilities)
        kept = nucleus_mask(probabilities, self.p)
        return draw(ops.where(kept, probabilities, 0.0), self.seed_generator)
