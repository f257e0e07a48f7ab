"""`TokenRules`: the rules on the next token that every kgpt2 sampler shares.

KerasHub's samplers only ever see the model's logits, so they cannot avoid
what they already wrote. This mixin adds rules that look at the tokens
written so far (`repetition_penalty`, `no_repeat_ngram_size`, OpenAI's
`presence_penalty` and `frequency_penalty`, `logit_bias` and `valid_utf8`)
to any `keras_hub.samplers.Sampler` without touching its decode loop: it
wraps the `next` function the loop calls, and rewrites
the logits `next` returns using the token buffer and index `next` receives.
That works for the plain loop (greedy, random, top-k, top-p), for beam
search (whose rows are reordered beams) and for contrastive search (which
also scores look-ahead candidates), and it assumes nothing about the cache,
which passes through untouched. With neutral options `next` is not wrapped
at all, so the sampler runs exactly KerasHub's code.
"""

from keras import ops

from kgpt2.checks import check_number
from kgpt2.errors import InputError
from kgpt2.samplers.logits_processing import BANNED_LOGIT
from kgpt2.samplers.logits_processing import apply_logit_bias
from kgpt2.samplers.logits_processing import apply_no_repeat_ngram
from kgpt2.samplers.logits_processing import apply_presence_frequency_penalty
from kgpt2.samplers.logits_processing import apply_repetition_penalty
from kgpt2.samplers.logits_processing import logit_bias_pairs
from kgpt2.samplers.logits_processing import token_counts
from kgpt2.samplers.utf8_continuation import allowed_token_mask
from kgpt2.samplers.utf8_continuation import tokenizer_utf8_tables
from kgpt2.samplers.vocabulary_fit import check_sampler_fits


class TokenRules:
    """Mixin adding the repetition and UTF-8 rules to a `keras_hub.samplers.Sampler`.

    Put it first among the bases: `class S(TokenRules, KerasHubSampler)`.
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
        presence_penalty: float in [-2, 2], OpenAI's: subtracted from the
            logit of every token already generated (the prompt does not
            count). `0.0` (default) disables it.
        frequency_penalty: float in [-2, 2], OpenAI's: subtracted once per
            occurrence of the token in the generated text. `0.0` disables it.
        logit_bias: `{token id: bias}` with biases in [-100, 100], added to
            those tokens' logits; -100 bans the token. `None` disables it.

    The logits rules are applied in this order: repetition penalty,
    n-gram ban, presence and frequency penalties, logit bias, UTF-8 ban;
    the same functions as the batching engine's (`logits_processing`).

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
        presence_penalty=0.0,
        frequency_penalty=0.0,
        logit_bias=None,
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
        check_number(owner, "presence_penalty", presence_penalty, minimum=-2, maximum=2)
        check_number(owner, "frequency_penalty", frequency_penalty, minimum=-2, maximum=2)
        self.presence_penalty = float(presence_penalty)
        self.frequency_penalty = float(frequency_penalty)
        self.logit_bias = dict(logit_bias_pairs(owner, logit_bias)) or None
        self._utf8_tables = None

    @property
    def rewrites_logits(self):
        """Whether any rule that rewrites logits is active (`next` gets wrapped)."""
        return (
            self.repetition_penalty != 1.0
            or self.no_repeat_ngram_size > 0
            or self.valid_utf8
            or self.counts_generated
            or bool(self.logit_bias)
        )

    @property
    def counts_generated(self):
        """Whether the presence or frequency penalty is on."""
        return self.presence_penalty != 0.0 or self.frequency_penalty != 0.0

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

    def process_logits(self, logits, token_ids, index, generated=None):
        """Apply the active rules to next-token `logits`.

        Penalty first, then the n-gram ban, as Hugging Face orders them, then
        the presence / frequency penalties over the positions `generated`
        (bool `(batch, length)`: the tokens written by the sampler, not the
        prompt), the logit bias and the UTF-8 ban; the temperature and any
        top-k / top-p / min-p cut come afterwards, in
        `compute_probabilities` and `get_next_token`.
        """
        if self.repetition_penalty != 1.0:
            logits = apply_repetition_penalty(
                logits, token_ids, index, self.repetition_penalty
            )
        if self.no_repeat_ngram_size > 0:
            logits = apply_no_repeat_ngram(
                logits, token_ids, index, self.no_repeat_ngram_size
            )
        if self.counts_generated:
            counts = token_counts(token_ids, generated, ops.shape(logits)[-1])
            logits = apply_presence_frequency_penalty(
                logits, counts, self.presence_penalty, self.frequency_penalty)
        if self.logit_bias:
            logits = apply_logit_bias(logits, [list(self.logit_bias)],
                                      [list(self.logit_bias.values())])
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
        if self.rewrites_logits:
            model_next = next
            given = ops.zeros_like(prompt, dtype="bool") if mask is None else mask

            def next(token_ids, cache, index):
                # `index` is the position `logits` predict: tokens before it
                # are the prompt and output so far; the unmasked ones among
                # them were generated. Beam search repeats the rows.
                logits, hidden_states, cache = model_next(token_ids, cache, index)
                prompt_mask = ops.cast(given, "bool")
                copies = ops.shape(token_ids)[0] // ops.shape(prompt_mask)[0]
                if copies > 1:
                    prompt_mask = ops.repeat(prompt_mask, copies, axis=0)
                positions = ops.arange(ops.shape(token_ids)[1], dtype="int32")[None, :]
                generated = ops.logical_and(ops.logical_not(prompt_mask), positions < index)
                logits = self.process_logits(logits, token_ids, index, generated)
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
                "presence_penalty": self.presence_penalty,
                "frequency_penalty": self.frequency_penalty,
                # JSON keys are strings; __init__ reads them back as ids.
                "logit_bias": None if not self.logit_bias else {
                    str(token): bias for token, bias in self.logit_bias.items()},
            }
        )
        return config
