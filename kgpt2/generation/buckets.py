"""Shape buckets: a few compiled shapes serve every prompt length and max_length.

XLA compiles one program per input shape, and KerasHub's `generate` pads to
`max_length`, so every new `max_length` recompiles (keras-hub#779). kgpt2
rounds lengths up to a bucket instead: a call for `max_length=100` reuses the
program compiled for 128. Buckets grow by about 1.4x (powers of two and the
midpoints between them), so at most ~41% of a cache is padding, which
attention has to read but nothing else touches.

Example:
```python
from kgpt2.generation.buckets import bucket_length

print(bucket_length(100), bucket_length(132), bucket_length(1024))  # 128 192 1024
```
"""

from kgpt2.errors import InputError

# 8, 12, 16, 24, 32, 48, ..., 768, 1024, 1536, ...
LENGTH_BUCKETS = tuple(
    sorted({int(base * 2**exponent) for exponent in range(3, 16) for base in (1, 1.5)})
)


def bucket_length(length):
    """Return the smallest bucket that holds `length` (an int >= 1)."""
    if length < 1:
        raise InputError(f"length must be >= 1, got {length}.")
    for bucket in LENGTH_BUCKETS:
        if bucket >= length:
            return int(bucket)
    return int(length)
