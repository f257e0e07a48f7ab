"""`RepetitionControl`: the repetition options every kgpt2 sampler shares.

KerasHub's samplers only ever see the model's logits, so they cannot avoid
what they already wrote. This mixin adds `repetition_penalty` and
`no_repeat_ngram_size` to any `keras_hub.samplers.Sampler` without touching
its decode loop: it wraps the `next` function the loop calls, and rewrites
the logits `next` returns using the token buffer and index `next` receives.
That works for the plain loop (greedy, random, top-k, top-p), for beam
search (whose rows are reordered beams) and for contrastive search (which
also scores look-ahead candidates), and it assumes nothing about the cache,
which passes through untouched. With neutral options `next` is not wrapped
at all, so the sampler runs exactly KerasHub's code.

`valid_utf8` lives here too because it is the same kind of rule: it bans
next tokens by looking at the tokens written so far.
"""

from keras import ops

from kgpt2.checks import check_number
from kgpt2.errors import InputError
from kgpt2.samplers.logits_processing import BANNED_LOGIT
from kgpt2.samplers.logits_processing import apply_no_repeat_ngram
from kgpt2.samplers.logits_processing import apply_repetition_penalty
from kgpt2.samplers.utf8_continuation import allowed_token_mask
from kgpt2.samplers.utf8_continuation import tokenizer_utf8_tables
from kgpt2.samplers.vocabulary_fit import check_sampler_fits


class RepetitionControl:
    """Mixin adding repetition options to a `keras_hub.samplers.Sampler`.

    Put it first among the bases: `class S(RepetitionControl, KerasHubSampler)`.
    It also checks `temperature`, which every sampler takes.

    Args:
        temperature: float > 0, divides the logits before the softmax.
        repetition_penalty: float > 0. The CTRL / Hugging Face penalty on every
            token already in the prompt or output: positive logits are divided
            by it, negative ones multiplied. `1.0` (default) disables it;
            1.1-1.3 is the usual range.
        no_repeat_ngram_size: int >= 0. Never complete an n-gram of this size
            that already occurs in the prompt or output. `0` disables it.
        valid_utf8: bool. Only pick tokens whose bytes can continue the text
            as valid UTF-8, so a byte-level BPE model never writes bytes that
            decode to U+FFFD (a lead byte followed by another lead byte, a
            stray continuation byte), nor stops in the middle of a
            character. Needs the model's tokenizer. `False` (default)
            disables it.

    Example:
    ```python
    import kgpt2

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    lm.compile(sampler=kgpt2.samplers.GreedySampler(no_repeat_ngram_size=3))
    print(lm.generate("The quick brown fox", max_length=24))
    ```
    """

    def __init__(
        self,
        temperature=1.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        valid_utf8=False,
        **kwargs,
    ):
        owner = type(self).__name__
        check_number(owner, "temperature", temperature, minimum=0,
                     exclusive_minimum=True)
        check_number(owner, "repetition_penalty", repetition_penalty, minimum=0,
                     exclusive_minimum=True)
        check_number(owner, "no_repeat_ngram_size", no_repeat_ngram_size,
                     minimum=0, integer=True)
        super().__init__(temperature=temperature, **kwargs)
        self.repetition_penalty = float(repetition_penalty)
        self.no_repeat_ngram_size = int(no_repeat_ngram_size)
        if not isinstance(valid_utf8, bool):
            raise InputError(
                f"{owner}: valid_utf8 must be True or False, got {valid_utf8!r}."
            )
        self.valid_utf8 = valid_utf8
        self._utf8_tables = None

    @property
    def controls_repetition(self):
        """Whether any option that rewrites logits is active (`next` gets wrapped)."""
        return (
            self.repetition_penalty != 1.0
            or self.no_repeat_ngram_size > 0
            or self.valid_utf8
        )

    def _load_utf8_tables(self, model):
        """The UTF-8 tables of `model`'s tokenizer, built once per sampler."""
        tokenizer = getattr(getattr(model, "preprocessor", None), "tokenizer", None)
        if tokenizer is None:
            raise InputError(
                f"{type(self).__name__}(valid_utf8=True) needs a model with a "
                "preprocessor holding its byte-level BPE tokenizer."
            )
        if self._utf8_tables is None or self._utf8_tables[0] is not tokenizer:
            self._utf8_tables = (tokenizer, tokenizer_utf8_tables(tokenizer))
        return self._utf8_tables[1]

    def process_logits(self, logits, token_ids, index):
        """Apply the active repetition options to next-token `logits`.

        Penalty first, then the n-gram ban, as Hugging Face orders them, then
        the UTF-8 ban; the temperature and any top-k / top-p / min-p cut come
        afterwards, in `compute_probabilities` and `get_next_token`.
        """
        if self.repetition_penalty != 1.0:
            logits = apply_repetition_penalty(
                logits, token_ids, index, self.repetition_penalty
            )
        if self.no_repeat_ngram_size > 0:
            logits = apply_no_repeat_ngram(
                logits, token_ids, index, self.no_repeat_ngram_size
            )
        if self.valid_utf8 and self._utf8_tables is not None:
            allowed = allowed_token_mask(self._utf8_tables[1], token_ids, index)
            vocab_size = ops.shape(logits)[-1]
            allowed = allowed[:, :vocab_size]
            logits = ops.where(allowed, ops.cast(logits, "float32"), BANNED_LOGIT)
        return logits

    def __call__(
        self,
        next,
        prompt,
        cache=None,
        index=0,
        mask=None,
        stop_token_ids=None,
        hidden_states=None,
        model=None,
        **kwargs,
    ):
        backbone = getattr(model, "backbone", None)
        if backbone is not None and hasattr(backbone, "vocabulary_size"):
            # While tracing, before JAX's top_k could fail on a too-large k.
            check_sampler_fits(self, backbone.vocabulary_size)
        if self.valid_utf8:
            self._load_utf8_tables(model)
        if self.controls_repetition:
            model_next = next

            def next(token_ids, cache, index):
                # `index` is the position `logits` predict: tokens before it
                # are the prompt and output so far.
                logits, hidden_states, cache = model_next(token_ids, cache, index)
                logits = self.process_logits(logits, token_ids, index)
                return logits, hidden_states, cache

        return super().__call__(
            next=next,
            prompt=prompt,
            cache=cache,
            index=index,
            mask=mask,
            stop_token_ids=stop_token_ids,
            hidden_states=hidden_states,
            model=model,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "repetition_penalty": self.repetition_penalty,
                "no_repeat_ngram_size": self.no_repeat_ngram_size,
                "valid_utf8": self.valid_utf8,
            }
        )
        return config
