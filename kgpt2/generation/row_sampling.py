"""Per-row sampling: every row of a batch with its own sampler settings.

Continuous batching decodes requests with different settings in one step, so
the settings are tensors with one value per row rather than a sampler
object's constants. `SamplingOptions` holds one request's settings and
`sample_rows` turns a `(batch, vocab)` logits tensor into one token per row,
in Hugging Face's order (and kgpt2's samplers'): repetition penalty, no-repeat
n-gram ban, temperature, top-k, top-p, min-p, then a draw. Top-k sorts only
the most likely tokens (at most `MAX_CUT`: sorting the whole vocabulary
costs more than the model's step on CPU); top-p then keeps the exact
nucleus, its mass measured on the whole distribution as in kgpt2's and
KerasHub's `TopPSampler`, found without sorting (`kgpt2.samplers.nucleus`).
`temperature == 0`
means greedy (the largest logit after the repetition rules), as in OpenAI's
API. The draw uses one uniform number per row, passed in from the host, so a
seeded request gives the same tokens whichever other rows share its batch.

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

import dataclasses

import numpy as np
from keras import ops

from kgpt2.checks import check_number
from kgpt2.errors import InputError
from kgpt2.samplers import SAMPLERS
from kgpt2.samplers.logits_processing import BANNED_LOGIT
from kgpt2.samplers.logits_processing import present_token_mask
from kgpt2.samplers.logits_processing import tokens_to_vocab_mask
from kgpt2.samplers.nucleus import draw_at
from kgpt2.samplers.nucleus import nucleus_threshold

# The most candidates a top-k cut sorts (so top_k is at most this).
MAX_CUT = 1024

# The samplers a continuous batch can mix, and the options each one takes
# (its kgpt2.samplers option name -> SamplingOptions field).
ROW_SAMPLERS = {
    "greedy": {"repetition_penalty": "repetition_penalty",
               "no_repeat_ngram_size": "no_repeat_ngram_size"},
    "random": {"temperature": "temperature", "min_p": "min_p",
               "repetition_penalty": "repetition_penalty",
               "no_repeat_ngram_size": "no_repeat_ngram_size"},
    "top_k": {"k": "top_k", "temperature": "temperature", "min_p": "min_p",
              "repetition_penalty": "repetition_penalty",
              "no_repeat_ngram_size": "no_repeat_ngram_size"},
    "top_p": {"p": "top_p", "k": "top_k", "temperature": "temperature",
              "min_p": "min_p", "repetition_penalty": "repetition_penalty",
              "no_repeat_ngram_size": "no_repeat_ngram_size"},
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
        if self.seed is not None:
            check_number(owner, "seed", self.seed, minimum=0, integer=True)

    @classmethod
    def from_sampler(cls, name, seed=None, **options):
        """Settings equivalent to `kgpt2.samplers.get(name, **options)`.

        Options set to None keep the sampler's default (as in
        `kgpt2.samplers.get`); the defaults are the sampler classes' own
        (top_k's `k=5`, top_p's `p=0.1`).
        """
        import inspect

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
        return cls(seed=seed, **fields)

    @staticmethod
    def stack(rows):
        """Per-row arrays of a list of `SamplingOptions` (None rows are neutral)."""
        rows = [row or SamplingOptions() for row in rows]
        return {
            "temperature": np.array([r.temperature for r in rows], "float32"),
            "top_k": np.array([r.top_k for r in rows], "int32"),
            "top_p": np.array([r.top_p for r in rows], "float32"),
            "min_p": np.array([r.min_p for r in rows], "float32"),
            "repetition_penalty": np.array([r.repetition_penalty for r in rows], "float32"),
            "no_repeat_ngram_size": np.array([r.no_repeat_ngram_size for r in rows], "int32"),
        }


def cut_width(top_k):
    """The candidates a top-k cut of `top_k` sorts: a power of two >= 64."""
    width = 64
    while width < top_k:
        width *= 2
    return width


def needed_features(rows):
    """The static switches a step's program needs for `rows` (hashable).

    Each combination compiles its own program, and only what some row needs
    is computed: the random draw (greedy-only steps skip it), the top-k
    cut over the `width` most likely tokens, the top-p nucleus, the
    repetition penalty, each n-gram size.
    """
    rows = [row for row in rows if row is not None]
    sampling = [r for r in rows if r.temperature > 0]
    width = 0
    if any(r.top_k > 0 for r in sampling):
        width = cut_width(max(r.top_k for r in sampling))
    return (
        bool(sampling),
        width,
        any(r.top_p < 1.0 for r in sampling),
        any(r.repetition_penalty != 1.0 for r in rows),
        tuple(sorted({r.no_repeat_ngram_size for r in rows} - {0})),
    )


def _banned_ngrams(history, index, ngram_size, vocab_size):
    """`banned_ngram_mask` with each row at its own `index` `(batch,)`."""
    batch_size, length = ops.shape(history)[0], ops.shape(history)[1]
    num_windows = length - ngram_size + 1
    if num_windows < 1:
        return ops.zeros((batch_size, vocab_size), dtype="bool")
    ends = ops.arange(num_windows, dtype="int32") + (ngram_size - 1)
    matches = ends[None, :] < index[:, None]
    if ngram_size > 1:
        # The last ngram_size - 1 tokens before each row's index.
        where = index[:, None] - (ngram_size - 1) + ops.arange(ngram_size - 1, dtype="int32")
        prefix = ops.take_along_axis(history, ops.clip(where, 0, length - 1), axis=1)
        for offset in range(ngram_size - 1):
            window = history[:, offset : offset + num_windows]
            matches = ops.logical_and(
                matches, ops.equal(window, prefix[:, offset : offset + 1])
            )
    return tokens_to_vocab_mask(history[:, ngram_size - 1 :], matches, vocab_size)


def _repetition_rules(logits, history, index, options, penalty, ngram_sizes):
    vocab_size = ops.shape(logits)[-1]
    if penalty:
        present = present_token_mask(history, index[:, None], vocab_size)
        factor = options["repetition_penalty"][:, None]
        penalized = ops.where(logits > 0, logits / factor, logits * factor)
        logits = ops.where(present, penalized, logits)
    for size in ngram_sizes:
        banned = _banned_ngrams(history, index, size, vocab_size)
        banned = ops.logical_and(banned, (options["no_repeat_ngram_size"] == size)[:, None])
        logits = ops.where(banned, BANNED_LOGIT, logits)
    return logits


def _top_k_mask(scaled, options, width):
    """Which tokens each row's `top_k` keeps: bool `(batch, vocab)`.

    Only the `width` most likely tokens are sorted; a row's `top_k` of 0
    keeps every token.
    """
    ordered, _ = ops.top_k(scaled, width)  # (batch, width), descending
    k = options["top_k"]
    kth = ops.take_along_axis(ordered, (ops.clip(k, 1, width) - 1)[:, None], axis=1)
    return ops.logical_or(scaled >= kth, (k <= 0)[:, None])


def sample_rows(logits, history, index, options, uniforms, features=None):
    """Pick one token per row of `logits` with that row's settings.

    Args:
        logits: `(batch, vocab)` next-token logits.
        history: `(batch, length)` int token ids; row `b`'s tokens so far are
            `history[b, :index[b]]` (what the repetition rules look at).
        index: `(batch,)` int, the count of tokens so far per row.
        options: `SamplingOptions.stack(...)` arrays.
        uniforms: `(batch,)` floats in [0, 1), each row's draw.
        features: `needed_features(...)`, static; None turns every rule on.

    Returns:
        `(batch,)` int32 token ids.
    """
    sampling, width, nucleus, penalty, ngram_sizes = features or (True, MAX_CUT, True, True, (1, 2, 3, 4))
    logits = ops.cast(logits, "float32")
    index = ops.cast(index, "int32")
    if penalty or ngram_sizes:
        logits = _repetition_rules(logits, history, index, options, penalty, ngram_sizes)
    greedy = ops.argmax(logits, axis=-1)
    if not sampling:
        return ops.cast(greedy, "int32")
    temperature = options["temperature"]
    scaled = logits / ops.where(temperature > 0, temperature, 1.0)[:, None]
    probabilities = ops.softmax(scaled, axis=-1)
    if width:
        keep = _top_k_mask(scaled, options, min(width, ops.shape(scaled)[-1]))
        probabilities = ops.where(keep, probabilities, 0.0)
    if nucleus:
        top_p = options["top_p"][:, None]
        probabilities = ops.where(
            probabilities >= nucleus_threshold(probabilities, top_p), probabilities, 0.0)
    highest = ops.max(probabilities, axis=-1, keepdims=True)
    probabilities = ops.where(
        probabilities >= options["min_p"][:, None] * highest, probabilities, 0.0
    )
    drawn = draw_at(probabilities, uniforms)
    return ops.cast(ops.where(temperature > 0, drawn, greedy), "int32")
