"""Checks for sampler options, run when a sampler is built, not in the loop.

A bad option fails at construction with a message that names the sampler,
the option, the value and what is allowed, instead of as a shape error deep
inside a compiled generate function.

Example:
```python
from kgpt2.samplers.option_checks import check_number

check_number("TopKSampler", "k", 5, minimum=1, integer=True)  # passes
```
"""

import numbers


def check_number(
    owner, name, value, minimum=None, maximum=None, integer=False,
    exclusive_minimum=False,
):
    """Raise `ValueError` unless `value` is a number in the allowed range.

    Example:
    ```python
    from kgpt2.samplers.option_checks import check_number

    try:
        check_number("TopPSampler", "p", 1.5, minimum=0, maximum=1,
                     exclusive_minimum=True)
    except ValueError as error:
        print(error)  # TopPSampler: p must be a number > 0 and <= 1, got 1.5.
    ```
    """
    kind = numbers.Integral if integer else numbers.Real
    valid = isinstance(value, kind) and not isinstance(value, bool)
    if valid and minimum is not None:
        valid = value > minimum if exclusive_minimum else value >= minimum
    if valid and maximum is not None:
        valid = value <= maximum
    if not valid:
        bounds = []
        if minimum is not None:
            bounds.append(f"{'>' if exclusive_minimum else '>='} {minimum}")
        if maximum is not None:
            bounds.append(f"<= {maximum}")
        what = "an integer" if integer else "a number"
        raise ValueError(
            f"{owner}: {name} must be {what} {' and '.join(bounds)}".rstrip()
            + f", got {value!r}."
        )


def check_seed(owner, seed):
    """Raise `ValueError` unless `seed` is `None` or a non-negative integer.

    Example:
    ```python
    from kgpt2.samplers.option_checks import check_seed

    check_seed("RandomSampler", 42)  # passes
    ```
    """
    if seed is not None:
        check_number(owner, "seed", seed, minimum=0, integer=True)
