"""Text generation: `kgpt2.generate` and the fast token-id path under it.

Example:
```python
import kgpt2

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
print(kgpt2.generate(lm, "The quick brown fox", sampler="greedy", max_length=16))
print(kgpt2.generation.generate_token_ids(lm, [[464, 2068]], max_length=8).shape)
```
"""

from kgpt2.compilation_cache import enable_compilation_cache
from kgpt2.generation.buckets import bucket_length
from kgpt2.generation.samples_file import SAMPLE_DELIMITER
from kgpt2.generation.streaming import stream_text
from kgpt2.generation.text import generate
from kgpt2.generation.token_ids import generate_token_ids

__all__ = [
    "SAMPLE_DELIMITER",
    "bucket_length",
    "enable_compilation_cache",
    "generate",
    "generate_token_ids",
    "stream_text",
]
