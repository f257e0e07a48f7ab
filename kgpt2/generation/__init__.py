"""Text generation: `kgpt2.generate` and the fast token-id path under it.

Names load on first use, so `import kgpt2` does not import Keras.

Example:
```python
import kgpt2

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
print(kgpt2.generate(lm, "The quick brown fox", sampler="greedy", max_length=16))
print(kgpt2.generation.generate_token_ids(lm, [[464, 2068]], max_length=8).shape)
```
"""

import importlib

# Public name -> the module that defines it.
_EXPORTS = {
    "GeneratedTexts": "kgpt2.generation.text",
    "SAMPLE_DELIMITER": "kgpt2.generation.samples_file",
    "bucket_length": "kgpt2.generation.buckets",
    "enable_compilation_cache": "kgpt2.generation.compilation_cache",
    "generate": "kgpt2.generation.text",
    "generate_token_ids": "kgpt2.generation.token_ids",
    "stream_text": "kgpt2.generation.streaming",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kgpt2.generation' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
