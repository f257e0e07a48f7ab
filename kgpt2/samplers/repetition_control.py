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
"""

from kgpt2.samplers.logits_processing import apply_no_repeat_ngram
from kgpt2.samplers.logits_processing import apply_repetition_penalty
from kgpt2.checks import check_number
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

    @property
    def controls_repetition(self):
        """Whether any repetition option is active (`next` gets wrapped)."""
        return self.repetition_penalty != 1.0 or self.no_repeat_ngram_size > 0

    def process_logits(self, logits, token_ids, index):
        """Apply the active repetition options to next-token `logits`.

        Penalty first, then the n-gram ban, as Hugging Face orders them; the
        temperature and any top-k / top-p / min-p cut come afterwards, in
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
            }
        )
        return config
