"""Samplers for `lm.compile(sampler=...)`, with repetition control.

KerasHub's greedy, random, top-k, top-p, beam and contrastive samplers, each
extended with `repetition_penalty` and `no_repeat_ngram_size` (and `min_p`
for the ones that sample). They are `keras_hub.samplers.Sampler` subclasses
that run inside the compiled generate loop and serialize with
`keras_hub.samplers.serialize` / `deserialize`.

The names below load on first use, so that the `kgpt2` command starts
without Keras. Touching `get`, `options`, `SAMPLERS` or any sampler class
imports the registry, which registers every kgpt2 sampler class with Keras,
as `keras_hub.samplers.deserialize` needs.

Example:
```python
import keras_hub
import kgpt2

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
sampler = kgpt2.samplers.get("greedy", no_repeat_ngram_size=3)
lm.compile(sampler=sampler)
print(lm.generate("The quick brown fox", max_length=24))
config = keras_hub.samplers.serialize(sampler)
print(keras_hub.samplers.deserialize(config).get_config() == sampler.get_config())
```
"""

from kgpt2.lazy import lazy_exports

# Public name -> the module that defines it (the registry imports, and so
# registers, every sampler class).
_EXPORTS = {
    "SAMPLERS": "kgpt2.samplers.registry",
    "get": "kgpt2.samplers.registry",
    "options": "kgpt2.samplers.registry",
    "BeamSampler": "kgpt2.samplers.registry",
    "ContrastiveSampler": "kgpt2.samplers.registry",
    "GreedySampler": "kgpt2.samplers.registry",
    "RandomSampler": "kgpt2.samplers.registry",
    "TopKSampler": "kgpt2.samplers.registry",
    "TopPSampler": "kgpt2.samplers.registry",
    "MinPFilter": "kgpt2.samplers.min_p_filter",
    "TokenRules": "kgpt2.samplers.token_rules",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted([*_EXPORTS, "logits_processing"])
