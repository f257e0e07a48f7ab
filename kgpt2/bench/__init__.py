"""Benchmarks: generation and training speed (issue 6), `kgpt2.bench`.

Example:
```python
import kgpt2

report = kgpt2.bench("gpt2_tiny_random", batch_sizes=[1], samplers=["greedy"],
                     new_tokens=8, train=None)
print(report["results"][0]["steady_tok_per_s"])
```
"""

from kgpt2.bench.benchmark import SUPPORTED_BACKENDS
from kgpt2.bench.benchmark import bench

__all__ = ["SUPPORTED_BACKENDS", "bench"]
