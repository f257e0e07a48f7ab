"""Turn `sampler=` arguments (None, a name, or an object) into one sampler object.

Names go through `kgpt2.samplers.get`, and the object made for a name and
options is reused, so that asking twice for `"top_k"` reuses the
compiled program instead of compiling a new one for a new object.

Example:
```python
import kgpt2
from kgpt2.generation.sampler_lookup import resolve_sampler

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
print(resolve_sampler(lm, "greedy") is resolve_sampler(lm, "greedy"))  # True
```
"""

import inspect
import weakref

import keras
import keras_hub

from kgpt2 import samplers
from kgpt2.checks import check_integer
from kgpt2.checks import check_seed
from kgpt2.errors import InputError
from kgpt2.samplers.vocabulary_fit import check_sampler_fits

_BY_NAME = {}
# sampler -> {min_new_tokens: its copy with that option}; weak, like the
# compiled programs keyed on the copies.
_WITH_MIN_NEW_TOKENS = weakref.WeakKeyDictionary()


def resolve_sampler(lm, sampler=None, **options):
    """Return a `keras_hub.samplers.Sampler` for `sampler`.

    Args:
        lm: the model; `sampler=None` means its compiled sampler
            (`lm.compile(sampler=...)`, KerasHub's default is top-k).
        sampler: None, a sampler name (`greedy`, `random`, `top_k`, `top_p`,
            `beam`, `contrastive`), or a `keras_hub.samplers.Sampler`.
        **options: options for a named sampler (`k`, `p`, `temperature`, ...).
    """
    if sampler is None:
        if options:
            raise InputError(
                f"Sampler options {sorted(options)} need a sampler name, e.g. "
                "sampler='top_k'."
            )
        resolved = lm.sampler
    elif isinstance(sampler, keras_hub.samplers.Sampler):
        if options:
            raise InputError(
                f"Sampler options {sorted(options)} were given with a sampler "
                "object; set them on the object instead."
            )
        resolved = sampler
    elif isinstance(sampler, str):
        key = (sampler, tuple(sorted(options.items())), keras.config.backend())
        if key not in _BY_NAME:
            _BY_NAME[key] = samplers.get(sampler, **options)
        resolved = _BY_NAME[key]
    else:
        raise InputError(
            f"sampler must be None, a sampler name or a keras_hub.samplers.Sampler, "
            f"got {type(sampler).__name__}: {sampler!r}."
        )
    # Before anything is compiled: a k beyond the vocabulary fails in JAX.
    check_sampler_fits(resolved, lm.backbone.vocabulary_size)
    return resolved


def reseed(sampler, seed):
    """Reset every random stream of `sampler` as if it were built with `seed`.

    The compiled program takes the sampler's state as an argument, so this
    needs no recompile. Samplers without randomness (greedy, beam) are
    unchanged.
    """
    check_seed("reseed", seed)
    for generator in getattr(sampler, "_seed_generators", []):
        generator.state.assign(keras.random.SeedGenerator(seed).state.value)


def _kgpt2_class(sampler):
    """The kgpt2 sampler class that takes `sampler`'s config, or None."""
    if isinstance(sampler, samplers.TokenRules):
        return type(sampler)
    for cls in samplers.SAMPLERS.values():
        # kgpt2's classes subclass KerasHub's of the same name and options.
        if type(sampler) in cls.__mro__[1:]:
            return cls
    return None


def with_min_new_tokens(sampler, min_new_tokens, owner="kgpt2.generate"):
    """`sampler`, or its copy that ends no row before `min_new_tokens` new tokens.

    A kgpt2 sampler whose `min_new_tokens` already has the value is returned
    as it is. Otherwise the copy is a kgpt2 sampler with `sampler`'s config
    (a KerasHub greedy, random, top-k, top-p, beam or contrastive sampler
    becomes kgpt2's) and random state, made once per sampler and value so
    that its compiled program is reused.

    Raises:
        InputError: `min_new_tokens` is not an integer >= 0, or `sampler` is
            a class kgpt2 has no counterpart for.

    Example:
    ```python
    import keras_hub
    from kgpt2.generation.sampler_lookup import with_min_new_tokens

    sampler = with_min_new_tokens(keras_hub.samplers.TopKSampler(k=3), 8)
    print(type(sampler).__module__, sampler.k, sampler.min_new_tokens)
    # kgpt2.samplers.top_k_sampler 3 8
    ```
    """
    check_integer(owner, "min_new_tokens", min_new_tokens, minimum=0)
    if getattr(sampler, "min_new_tokens", 0) == min_new_tokens:
        return sampler
    copies = _WITH_MIN_NEW_TOKENS.setdefault(sampler, {})
    if min_new_tokens not in copies:
        cls = _kgpt2_class(sampler)
        if cls is None:
            raise InputError(
                f"{owner}: min_new_tokens needs a kgpt2 or KerasHub built-in "
                f"sampler, got {type(sampler).__name__}; pass a sampler name or "
                "a kgpt2.samplers object instead."
            )
        accepted = inspect.signature(cls).parameters
        config = {k: v for k, v in sampler.get_config().items() if k in accepted}
        copy = cls(**{**config, "min_new_tokens": min_new_tokens})
        for mine, theirs in zip(copy.variables, sampler.variables):
            mine.assign(theirs.value)
        copies[min_new_tokens] = copy
    return copies[min_new_tokens]
