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

import keras
import keras_hub

from kgpt2 import samplers
from kgpt2.checks import check_seed
from kgpt2.errors import InputError
from kgpt2.samplers.vocabulary_fit import check_sampler_fits

_BY_NAME = {}


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
