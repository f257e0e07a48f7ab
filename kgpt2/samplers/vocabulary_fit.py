"""`check_sampler_fits`: refuse sampler options the model's vocabulary cannot meet.

A sampler is built before it meets a model, so `k` can only be checked
against the vocabulary size once both are known: when `kgpt2.generate` (or
`generate_token_ids`) resolves the sampler for a model, and when KerasHub's
`lm.generate` first calls a kgpt2 sampler. Either way it fails before any
program is compiled, instead of inside JAX's `top_k`.

Example:
```python
from kgpt2.samplers.top_k_sampler import TopKSampler
from kgpt2.samplers.vocabulary_fit import check_sampler_fits

check_sampler_fits(TopKSampler(k=40), vocabulary_size=50257)  # passes
```
"""

from kgpt2.errors import InputError


def check_sampler_fits(sampler, vocabulary_size):
    """Raise `InputError` if `sampler.k` is more than `vocabulary_size`.

    Works for any `keras_hub.samplers.Sampler`; samplers without `k` pass.

    Example:
    ```python
    from kgpt2.samplers.top_k_sampler import TopKSampler
    from kgpt2.samplers.vocabulary_fit import check_sampler_fits

    try:
        check_sampler_fits(TopKSampler(k=10**9), vocabulary_size=50257)
    except ValueError as error:
        print(error)
    ```
    """
    k = getattr(sampler, "k", None)
    if k is not None and int(k) > int(vocabulary_size):
        raise InputError(
            f"{type(sampler).__name__}: k={k} is more than the model's vocabulary "
            f"of {vocabulary_size} tokens; use k <= {vocabulary_size}."
        )
    return sampler
