"""Samplers for `lm.compile(sampler=...)`, with repetition control.

KerasHub's greedy, random, top-k, top-p, beam and contrastive samplers, each
extended with `repetition_penalty` and `no_repeat_ngram_size` (and `min_p`
for the ones that sample). They are `keras_hub.samplers.Sampler` subclasses
that run inside the compiled generate loop and serialize with
`keras_hub.samplers.serialize` / `deserialize`.

The names below load on first use, so `import kgpt2` stays instant (the CLI
starts without importing Keras). Touching any of them registers every kgpt2
sampler class with Keras, which `keras_hub.samplers.deserialize` needs.

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

import importlib

# Public name -> the module that defines it.
_EXPORTS = {
    "SAMPLERS": "kgpt2.samplers.registry",
    "get": "kgpt2.samplers.registry",
    "options": "kgpt2.samplers.registry",
    "GreedySampler": "kgpt2.samplers.greedy_sampler",
    "RandomSampler": "kgpt2.samplers.random_sampler",
    "TopKSampler": "kgpt2.samplers.top_k_sampler",
    "TopPSampler": "kgpt2.samplers.top_p_sampler",
    "BeamSampler": "kgpt2.samplers.beam_sampler",
    "ContrastiveSampler": "kgpt2.samplers.contrastive_sampler",
    "RepetitionControl": "kgpt2.samplers.repetition_control",
    "MinPFilter": "kgpt2.samplers.min_p_filter",
    "logits_processing": "kgpt2.samplers.logits_processing",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kgpt2.samplers' has no attribute {name!r}")
    # The registry imports every sampler module: all classes get registered.
    importlib.import_module("kgpt2.samplers.registry")
    module = importlib.import_module(_EXPORTS[name])
    value = module if module.__name__.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
