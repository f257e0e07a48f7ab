"""`kgpt2.samplers.get`: a sampler from a name and options."""

import inspect

import keras_hub

from kgpt2.errors import InputError
from kgpt2.samplers.beam_sampler import BeamSampler
from kgpt2.samplers.contrastive_sampler import ContrastiveSampler
from kgpt2.samplers.greedy_sampler import GreedySampler
from kgpt2.samplers.random_sampler import RandomSampler
from kgpt2.samplers.top_k_sampler import TopKSampler
from kgpt2.samplers.top_p_sampler import TopPSampler

SAMPLERS = {
    "greedy": GreedySampler,
    "random": RandomSampler,
    "top_k": TopKSampler,
    "top_p": TopPSampler,
    "beam": BeamSampler,
    "contrastive": ContrastiveSampler,
}


def _sampler_class(name):
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else name
    if key not in SAMPLERS:
        raise InputError(
            f"Unknown sampler {name!r}. Known samplers: {', '.join(SAMPLERS)} "
            "(or pass a keras_hub.samplers.Sampler object)."
        )
    return key, SAMPLERS[key]


def options(name):
    """The option names sampler `name` accepts, in signature order.

    Example:
    ```python
    import kgpt2

    print(kgpt2.samplers.options("top_k"))
    # ('k', 'seed', 'temperature', 'min_p', 'repetition_penalty',
    #  'no_repeat_ngram_size', 'valid_utf8', 'presence_penalty',
    #  'frequency_penalty', 'logit_bias')
    ```
    """
    _, cls = _sampler_class(name)
    return tuple(inspect.signature(cls).parameters)


def get(sampler, **options_):
    """Return a sampler for `lm.compile(sampler=...)`.

    Args:
        sampler: a name (`greedy`, `random`, `top_k`, `top_p`, `beam`,
            `contrastive`; `-` works for `_`, case is ignored), or a
            `keras_hub.samplers.Sampler` object, returned unchanged.
        **options_: the sampler's options, see `kgpt2.samplers.options(name)`:
            `temperature`, `repetition_penalty`, `no_repeat_ngram_size`,
            `presence_penalty`, `frequency_penalty`, `logit_bias` for
            all; `seed` and `min_p` for random/top_k/top_p; `k` for
            top_k/top_p/contrastive; `p` for top_p; `num_beams` for beam;
            `alpha` for contrastive. An option set to `None` keeps its
            default, so optional command-line flags can be passed through.

    Returns:
        A `keras_hub.samplers.Sampler` (a kgpt2 subclass for names).

    Raises:
        ValueError: unknown name, an option the sampler does not take, or a
            value out of range; the message lists what is allowed.

    Example:
    ```python
    import kgpt2

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    lm.compile(sampler=kgpt2.samplers.get("top_k", k=10, seed=0,
                                          repetition_penalty=1.2))
    print(lm.generate("The quick brown fox", max_length=24))
    ```
    """
    if isinstance(sampler, keras_hub.samplers.Sampler):
        if options_:
            raise InputError(
                f"Got a {type(sampler).__name__} object and options "
                f"{sorted(options_)}: options only apply to a sampler name. "
                "Set them on the object when you build it instead."
            )
        return sampler
    name, cls = _sampler_class(sampler)
    given = {key: value for key, value in options_.items() if value is not None}
    allowed = options(name)
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise InputError(
            f"Sampler '{name}' does not take {', '.join(unknown)}. "
            f"Its options are: {', '.join(allowed)}."
        )
    return cls(**given)
