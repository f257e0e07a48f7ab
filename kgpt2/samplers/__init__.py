"""Samplers for `lm.compile(sampler=...)`, with repetition control.

KerasHub's greedy, random, top-k, top-p, beam and contrastive samplers, each
extended with `repetition_penalty` and `no_repeat_ngram_size` (and `min_p`
for the ones that sample). They are `keras_hub.samplers.Sampler` subclasses
that run inside the compiled generate loop and serialize with
`keras_hub.samplers.serialize` / `deserialize`.

Importing this package registers every kgpt2 sampler class with Keras,
which `keras_hub.samplers.deserialize` needs.

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

from kgpt2.samplers import logits_processing
from kgpt2.samplers.beam_sampler import BeamSampler
from kgpt2.samplers.contrastive_sampler import ContrastiveSampler
from kgpt2.samplers.greedy_sampler import GreedySampler
from kgpt2.samplers.min_p_filter import MinPFilter
from kgpt2.samplers.random_sampler import RandomSampler
from kgpt2.samplers.registry import SAMPLERS
from kgpt2.samplers.registry import get
from kgpt2.samplers.registry import options
from kgpt2.samplers.repetition_control import RepetitionControl
from kgpt2.samplers.top_k_sampler import TopKSampler
from kgpt2.samplers.top_p_sampler import TopPSampler

__all__ = [
    "BeamSampler",
    "ContrastiveSampler",
    "GreedySampler",
    "MinPFilter",
    "RandomSampler",
    "RepetitionControl",
    "SAMPLERS",
    "TopKSampler",
    "TopPSampler",
    "get",
    "logits_processing",
    "options",
]
