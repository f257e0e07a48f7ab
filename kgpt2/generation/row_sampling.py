"""Per-row sampling: every row of a batch with its own sampler settings.

Continuous batching decodes requests with different settings in one step, so
the settings are arrays with one value per row rather than a sampler
object's constants. `SamplingOptions` holds one request's settings;
`process_rows` applies the logits rules and `draw_rows` picks a token, both
built from the same per-row functions the `kgpt2.samplers` classes use
(`kgpt2.samplers.logits_processing`), in Hugging Face's order (and kgpt2's
samplers'): repetition penalty, no-repeat n-gram ban, OpenAI's presence and
frequency penalties, `logit_bias`, the `min_new_tokens` ban of the stop
tokens, then temperature, top-k, top-p, min-p and a draw. Top-k sorts only
the most likely tokens (at most `MAX_CUT`: sorting the whole vocabulary
costs more than the model's step on CPU); top-p then keeps the exact
nucleus, its mass measured on the whole distribution as in kgpt2's and
KerasHub's `TopPSampler`, found without sorting (`kgpt2.samplers.nucleus`).
`temperature == 0` means greedy (the largest logit after the logits rules),
as in OpenAI's API. The draw uses one uniform number per row, passed in from
the host, so a seeded request gives the same tokens whichever other rows
share its batch.

Log-probabilities (`token_logprobs`) are the log-softmax of the logits after
the logits rules (penalties, `logit_bias`, `min_new_tokens`) and before the
temperature and the top-k / top-p / min-p cuts, which only shape the draw.

Example:
```python
import numpy as np
from kgpt2.generation.row_sampling import SamplingOptions, sample_rows

options = [SamplingOptions(temperature=0.0), SamplingOptions(top_k=2)]
logits = np.array([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0]], "float32")
history = np.zeros((2, 4), "int32")
tokens = sample_rows(logits, history, np.array([1, 1]),
                     SamplingOptions.stack(options), np.array([0.5, 0.01]))
print(np.asarray(tokens))  # [1 2]
```
"""

import collections
import dataclasses

import numpy as np
from keras import ops

from kgpt2.checks import check_number
from kgpt2.errors import InputError
from kgpt2.samplers import SAMPLERS
from kgpt2.samplers.logits_processing import MAX_LOGIT_BIAS
from kgpt2.samplers.logits_processing import apply_logit_bias
from kgpt2.samplers.logits_processing import apply_min_new_tokens
from kgpt2.samplers.logits_processing import apply_min_p
from kgpt2.samplers.logits_processing import apply_no_repeat_ngram
from kgpt2.samplers.logits_processing import apply_presence_frequency_penalty
from kgpt2.samplers.logits_processing import apply_repetition_penalty
from kgpt2.samplers.logits_processing import logit_bias_pairs
from kgpt2.samplers.logits_processing import token_counts
from kgpt2.samplers.logits_processing import top_k_mask
from kgpt2.samplers.logits_processing import written_mask
from kgpt2.samplers.nucleus import draw_at
from kgpt2.samplers.nucleus import nucleus_threshold

# The most candidates a top-k cut sorts (so top_k is at most this).
MAX_CUT = 1024

# The most alternatives `logprobs` reports per token (OpenAI's limit for
# legacy completions).
MAX_LOGPROBS = 5

_REPETITION = {"repetition_penalty": "repetition_penalty",
               "no_repeat_ngram_size": "no_repeat_ngram_size",
               "presence_penalty": "presence_penalty",
               "frequency_penalty": "frequency_penalty",
               "logit_bias": "logit_bias"}

# The samplers a continuous batch can mix, and the options each one takes
# (its kgpt2.samplers option name -> SamplingOptions field).
ROW_SAMPLERS = {
    "greedy": dict(_REPETITION),
    "random": {"temperature": "temperature", "min_p": "min_p", **_REPETITION},
    "top_k": {"k": "top_k", "temperature": "temperature", "min_p": "min_p",
              **_REPETITION},
    "top_p": {"p": "top_p", "k": "top_k", "temperature": "temperature",
              "min_p": "min_p", **_REPETITION},
}


@dataclasses.dataclass(frozen=True)
class SamplingOptions:
    """One request's sampling settings (the neutral value disables each).

    Attributes:
        temperature: float >= 0; 0 is greedy.
        top_k: int >= 0; 0 keeps every token.
        top_p: float in (0, 1]; 1 keeps every token.
        min_p: float in [0, 1]; 0 keeps every token.
        repetition_penalty: float > 0; 1 disables it.
        no_repeat_ngram_size: int >= 0; 0 disables it.
        presence_penalty, frequency_penalty: floats in [-2, 2] (OpenAI's);
            0 disables them. They count the tokens generated so far.
        logit_bias: `{token id: bias in [-100, 100]}` or its sorted pairs;
            -100 bans the token.
        min_new_tokens: int >= 0; the stop tokens are banned until a row has
            this many new tokens.
        logprobs: None (no log-probabilities) or int in [0, 5], the most
            likely alternatives reported per token besides the chosen one.
        seed: int >= 0 or None, for the row's random draws.

    Example:
    ```python
    from kgpt2.generation.row_sampling import SamplingOptions

    print(SamplingOptions.from_sampler("top_k", k=40, temperature=0.7).top_k)  # 40
    ```
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: tuple = ()
    min_new_tokens: int = 0
    logprobs: int = None
    seed: int = None

    def __post_init__(self):
        owner = "SamplingOptions"
        check_number(owner, "temperature", self.temperature, minimum=0)
        check_number(owner, "top_k", self.top_k, minimum=0, maximum=MAX_CUT, integer=True)
        check_number(owner, "top_p", self.top_p, minimum=0, maximum=1,
                     exclusive_minimum=True)
        check_number(owner, "min_p", self.min_p, minimum=0, maximum=1)
        check_number(owner, "repetition_penalty", self.repetition_penalty,
                     minimum=0, exclusive_minimum=True)
        check_number(owner, "no_repeat_ngram_size", self.no_repeat_ngram_size,
                     minimum=0, integer=True)
        check_number(owner, "presence_penalty", self.presence_penalty, minimum=-2, maximum=2)
        check_number(owner, "frequency_penalty", self.frequency_penalty, minimum=-2, maximum=2)
        check_number(owner, "min_new_tokens", self.min_new_tokens, minimum=0, integer=True)
        if self.logprobs is not None:
            check_number(owner, "logprobs", self.logprobs, minimum=0, maximum=MAX_LOGPROBS,
                         integer=True)
        # A frozen dataclass: object.__setattr__ stores the normalized,
        # hashable pairs.
        object.__setattr__(self, "logit_bias", logit_bias_pairs(owner, self.logit_bias))
        if self.seed is not None:
            check_number(owner, "seed", self.seed, minimum=0, integer=True)

    @classmethod
    def from_sampler(cls, name, seed=None, **options):
        """Settings equivalent to `kgpt2.samplers.get(name, **options)`.

        Options set to None keep the sampler's default (as in
        `kgpt2.samplers.get`); the defaults are the sampler classes' own
        (top_k's `k=5`, top_p's `p=0.1`). `min_new_tokens` and `logprobs`
        are not sampler options: pass them here too.
        """
        import inspect

        extra = {key: options.pop(key) for key in ("min_new_tokens", "logprobs")
                 if options.get(key) is not None}
        key = name.strip().lower().replace("-", "_") if isinstance(name, str) else name
        if key not in ROW_SAMPLERS:
            raise InputError(
                f"sampler {name!r} cannot share a continuous batch; use one of "
                f"{', '.join(ROW_SAMPLERS)}."
            )
        given = {k: v for k, v in options.items() if v is not None}
        unknown = sorted(set(given) - set(ROW_SAMPLERS[key]))
        if unknown:
            raise InputError(
                f"sampler '{key}' does not take {', '.join(unknown)}; its options "
                f"are: {', '.join(ROW_SAMPLERS[key])}."
            )
        defaults = {
            parameter.name: parameter.default
            for parameter in inspect.signature(SAMPLERS[key]).parameters.values()
        }
        fields = {}
        for option, field in ROW_SAMPLERS[key].items():
            value = given.get(option, defaults.get(option))
            if value is not None:
                fields[field] = value
        if key == "greedy":
            fields["temperature"] = 0.0
        return cls(seed=seed, **fields, **extra)

    @staticmethod
    def stack(rows):
        """Per-row arrays of a list of `SamplingOptions` (None rows are neutral)."""
        rows = [row or SamplingOptions() for row in rows]
        bias_ids = np.zeros((len(rows), MAX_LOGIT_BIAS), "int32")
        bias_values = np.zeros((len(rows), MAX_LOGIT_BIAS), "float32")
        for number, row in enumerate(rows):
            for entry, (token, bias) in enumerate(row.logit_bias):
                bias_ids[number, entry], bias_values[number, entry] = token, bias
        return {
            "temperature": np.array([r.temperature for r in rows], "float32"),
            "top_k": np.array([r.top_k for r in rows], "int32"),
            "top_p": np.array([r.top_p for r in rows], "float32"),
            "min_p": np.array([r.min_p for r in rows], "float32"),
            "repetition_penalty": np.array([r.repetition_penalty for r in rows], "float32"),
            "no_repeat_ngram_size": np.array([r.no_repeat_ngram_size for r in rows], "int32"),
            "presence_penalty": np.array([r.presence_penalty for r in rows], "float32"),
            "frequency_penalty": np.array([r.frequency_penalty for r in rows], "float32"),
            "min_new_tokens": np.array([r.min_new_tokens for r in rows], "int32"),
            "bias_ids": bias_ids,
            "bias_values": bias_values,
        }


def cut_width(top_k):
    """The candidates a top-k cut of `top_k` sorts: a power of two >= 64."""
    width = 64
    while width < top_k:
        width *= 2
    return width


Features = collections.namedtuple(
    "Features",
    ["sampling", "width", "nucleus", "penalty", "ngram_sizes", "counted_penalty",
     "logit_bias", "min_new_tokens", "logprobs"],
    defaults=(False, False, (), None),
)
Features.__doc__ = """The static switches of a step's program (see `needed_features`)."""

# Every rule on (for calls without `features`).
ALL_FEATURES = Features(True, MAX_CUT, True, True, (1, 2, 3, 4), True, True, ())


def needed_features(rows, stop_token_ids=()):
    """The static switches a step's program needs for `rows` (hashable).

    Each combination compiles its own program, and only what some row needs
    is computed: the random draw (greedy-only steps skip it), the top-k
    cut over the `width` most likely tokens, the top-p nucleus, the
    repetition penalty, each n-gram size, the presence / frequency
    penalties, `logit_bias`, the `min_new_tokens` ban of `stop_token_ids`,
    and the log-probabilities (the most alternatives any row asks for).
    """
    rows = [row for row in rows if row is not None]
    sampling = [r for r in rows if r.temperature > 0]
    width = 0
    if any(r.top_k > 0 for r in sampling):
        width = cut_width(max(r.top_k for r in sampling))
    asked = [r.logprobs for r in rows if r.logprobs is not None]
    return Features(
        bool(sampling),
        width,
        any(r.top_p < 1.0 for r in sampling),
        any(r.repetition_penalty != 1.0 for r in rows),
        tuple(sorted({r.no_repeat_ngram_size for r in rows} - {0})),
        any(r.presence_penalty or r.frequency_penalty for r in rows),
        any(r.logit_bias for r in rows),
        tuple(stop_token_ids) if any(r.min_new_tokens for r in rows) else (),
        max(asked) if asked else None,
    )


def process_rows(logits, history, index, options, start=0, features=None):
    """Apply each row's logits rules (everything before the temperature).

    Args:
        logits: `(batch, vocab)` next-token logits.
        history: `(batch, length)` int token ids; row `b`'s tokens so far are
            `history[b, :index[b]]` (what the repetition rules look at).
        index: `(batch,)` int, the count of tokens so far per row.
        options: `SamplingOptions.stack(...)` arrays.
        start: `(batch,)` int, where each row's generated tokens begin (its
            prompt length): the presence / frequency penalties and
            `min_new_tokens` count from there.
        features: `needed_features(...)`, static; None turns every rule on.

    Returns:
        float32 `(batch, vocab)` logits.
    """
    features = features or ALL_FEATURES
    logits = ops.cast(logits, "float32")
    index = ops.cast(index, "int32")
    if features.penalty:
        logits = apply_repetition_penalty(logits, history, index,
                                          options["repetition_penalty"])
    for size in features.ngram_sizes:
        logits = apply_no_repeat_ngram(logits, history, index, size,
                                       rows=options["no_repeat_ngram_size"] == size)
    if features.counted_penalty:
        counts = token_counts(history, written_mask(history, index, start),
                              ops.shape(logits)[-1])
        logits = apply_presence_frequency_penalty(
            logits, counts, options["presence_penalty"], options["frequency_penalty"])
    if features.logit_bias:
        logits = apply_logit_bias(logits, options["bias_ids"], options["bias_values"])
    if features.min_new_tokens:
        logits = apply_min_new_tokens(logits, index - start, options["min_new_tokens"],
                                      features.min_new_tokens)
    return logits


def draw_rows(logits, options, uniforms, features=None):
    """Pick one token per row of processed `logits` (see `process_rows`):
    greedy rows the largest logit, others by temperature, top-k, top-p,
    min-p and their `uniforms` (`(batch,)` floats in [0, 1)). Returns
    `(batch,)` int32 token ids."""
    features = features or ALL_FEATURES
    greedy = ops.argmax(logits, axis=-1)
    if not features.sampling:
        return ops.cast(greedy, "int32")
    temperature = options["temperature"]
    scaled = logits / ops.where(temperature > 0, temperature, 1.0)[:, None]
    probabilities = ops.softmax(scaled, axis=-1)
    if features.width:
        keep = top_k_mask(scaled, options["top_k"], min(features.width, ops.shape(scaled)[-1]))
        probabilities = ops.where(keep, probabilities, 0.0)
    if features.nucleus:
        top_p = options["top_p"][:, None]
        probabilities = ops.where(
            probabilities >= nucleus_threshold(probabilities, top_p), probabilities, 0.0)
    probabilities = apply_min_p(probabilities, options["min_p"])
    drawn = draw_at(probabilities, uniforms)
    return ops.cast(ops.where(temperature > 0, drawn, greedy), "int32")


def token_logprobs(logits, tokens, top):
    """Log-probabilities of `tokens` under processed `logits`, and the `top`
    (static) most likely alternatives: `(chosen (batch,), top_ids (batch,
    top), top_logprobs (batch, top))`."""
    logprobs = ops.log_softmax(logits, axis=-1)
    chosen = ops.take_along_axis(logprobs, ops.cast(tokens, "int32")[:, None], axis=1)[:, 0]
    top_values, top_ids = ops.top_k(logprobs, max(top, 1))
    return chosen, ops.cast(top_ids[:, :top], "int32"), top_values[:, :top]


def sample_rows(logits, history, index, options, uniforms, features=None, start=0):
    """Pick one token per row of `logits` with that row's settings.

    `process_rows` then `draw_rows`; the arguments are theirs. Returns
    `(batch,)` int32 token ids.
    """
    logits = process_rows(logits, history, index, options, start, features)
    return draw_rows(logits, options, uniforms, features)
