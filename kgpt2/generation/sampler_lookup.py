"""Turn `sampler=` arguments (None, a name, or an object) into one sampler object.

Names go through `kgpt2.samplers.get` and the object made for a given name
and options is reused, so that asking twice for `"top_k"` reuses the
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

_BY_NAME = {}


def _get_by_name(name, **options):
    try:
        from kgpt2.samplers import get
    except ImportError:  # kgpt2.samplers not merged yet: KerasHub's names.
        if options:
            config = {"class_name": name, "config": options}
            return keras_hub.samplers.deserialize(config)
        return keras_hub.samplers.get(name)
    return get(name, **options)


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
            raise ValueError(
                f"Sampler options {sorted(options)} need a sampler name, e.g. "
                "sampler='top_k'."
            )
        return lm.sampler
    if isinstance(sampler, keras_hub.samplers.Sampler):
        if options:
            raise ValueError(
                f"Sampler options {sorted(options)} were given with a sampler "
                "object; set them on the object instead."
            )
        return sampler
    if isinstance(sampler, str):
        key = (sampler, tuple(sorted(options.items())), keras.config.backend())
        if key not in _BY_NAME:
            _BY_NAME[key] = _get_by_name(sampler, **options)
        return _BY_NAME[key]
    raise ValueError(
        f"sampler must be None, a sampler name or a keras_hub.samplers.Sampler, "
        f"got {type(sampler).__name__}: {sampler!r}."
    )
