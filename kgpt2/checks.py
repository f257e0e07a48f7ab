"""Argument checks shared by every public function of kgpt2.

A bad argument fails when it is given, with a message that names the owner
(function, sampler or flag), the argument, the value and what is allowed,
instead of as a shape error deep inside a compiled function.

Example:
```python
from kgpt2.checks import check_number

check_number("TopKSampler", "k", 5, minimum=1, integer=True)  # passes
```
"""

import contextlib
import contextvars
import math
import numbers

from kgpt2.errors import InputError

# Argument name -> what the caller typed for it (e.g. a command-line flag).
_SHOWN_NAMES = contextvars.ContextVar("kgpt2_shown_names", default={})


@contextlib.contextmanager
def shown_names(names):
    """Within the block, messages name arguments as `names` maps them.

    The command line maps each API argument to the flag that sets it, so
    `kgpt2 generate --max-length 0` is told about `--max-length`, not about
    the `sequence_length` that the flag becomes.

    Example:
    ```python
    from kgpt2.checks import check_integer, shown_names

    with shown_names({"sequence_length": "--max-length"}):
        try:
            check_integer(None, "sequence_length", 0, minimum=2)
        except ValueError as error:
            print(error)  # --max-length must be an integer >= 2, got 0.
    ```
    """
    token = _SHOWN_NAMES.set({**_SHOWN_NAMES.get(), **names})
    try:
        yield
    finally:
        _SHOWN_NAMES.reset(token)


def shown_name(name):
    """How messages name argument `name`: its flag inside `shown_names`, else itself.

    Example:
    ```python
    from kgpt2.checks import shown_name

    print(shown_name("sequence_length"))  # sequence_length
    ```
    """
    return _SHOWN_NAMES.get().get(name, name)


def check_number(
    owner, name, value, minimum=None, maximum=None, integer=False,
    exclusive_minimum=False, allow_none=False,
):
    """Raise `InputError` (a `ValueError`) unless `value` is a finite number in range.

    `owner` names what takes the argument (e.g. `"finetune"`); `None` leaves
    it out of the message. Booleans, NaN and infinities are refused.

    Example:
    ```python
    from kgpt2.checks import check_number

    try:
        check_number("TopPSampler", "p", 1.5, minimum=0, maximum=1,
                     exclusive_minimum=True)
    except ValueError as error:
        print(error)  # TopPSampler: p must be a number > 0 and <= 1, got 1.5.
    ```
    """
    if value is None and allow_none:
        return value
    kind = numbers.Integral if integer else numbers.Real
    valid = isinstance(value, kind) and not isinstance(value, bool)
    valid = valid and math.isfinite(value)
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
        prefix = f"{owner}: " if owner else ""
        raise InputError(
            f"{prefix}{shown_name(name)} must be {what} {' and '.join(bounds)}".rstrip()
            + f", got {value!r}."
        )
    return value


def check_integer(owner, name, value, minimum=0, maximum=None, allow_none=False):
    """Raise `InputError` unless `value` is an integer in range; return it.

    Example:
    ```python
    from kgpt2.checks import check_integer

    print(check_integer("finetune", "save_every", 100, minimum=1))  # 100
    ```
    """
    return check_number(
        owner, name, value, minimum=minimum, maximum=maximum, integer=True,
        allow_none=allow_none,
    )


def check_seed(owner, seed):
    """Raise `InputError` unless `seed` is `None` or a non-negative integer.

    Example:
    ```python
    from kgpt2.checks import check_seed

    check_seed("RandomSampler", 42)  # passes
    ```
    """
    return check_integer(owner, "seed", seed, minimum=0, allow_none=True)


def check_choice(owner, name, value, choices):
    """Raise `InputError` unless `value` is one of `choices`; return it.

    Example:
    ```python
    from kgpt2.checks import check_choice

    print(check_choice("finetune", "restore_from", "latest", ("latest", "fresh")))
    ```
    """
    if not isinstance(value, str) or value not in choices:
        prefix = f"{owner}: " if owner else ""
        allowed = ", ".join(repr(choice) for choice in choices)
        raise InputError(f"{prefix}{shown_name(name)} must be one of {allowed}, got {value!r}.")
    return value


def check_token_ids(owner, name, token_ids, vocabulary_size):
    """Raise `InputError` unless every id is an integer in `[0, vocabulary_size)`.

    Returns the ids as a tuple of Python ints (one id becomes a 1-tuple).

    Example:
    ```python
    from kgpt2.checks import check_token_ids

    print(check_token_ids("kgpt2.generate", "stop_token_ids", [50256], 50257))  # (50256,)
    ```
    """
    prefix = f"{owner}: " if owner else ""
    values = list(token_ids) if isinstance(token_ids, (list, tuple, range)) else None
    if values is None:
        try:
            import numpy as np

            values = np.atleast_1d(np.asarray(token_ids)).ravel().tolist()
        except (TypeError, ValueError):
            values = [token_ids]
    for value in values:
        integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if not integral or not 0 <= value < vocabulary_size:
            raise InputError(
                f"{prefix}{shown_name(name)} must be token ids from 0 to {vocabulary_size - 1} "
                f"(the model's vocabulary), got {value!r}."
            )
    return tuple(int(value) for value in values)
