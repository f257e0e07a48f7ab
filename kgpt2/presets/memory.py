"""Will a GPT-2 of this shape fit in this machine's memory? Asked before building it.

A config file can ask for any size (`num_layers: 100000`, `hidden_dim:
10000000`); building that model first and failing later means minutes of
swapping or an abort with no message. These estimates need only the config,
so loading and generating can refuse up front, with the numbers.
`kgpt2.training.memory_plan` estimates a training step on top of the same
parameter count.

Example:
```python
from kgpt2.presets.catalog import backbone_config
from kgpt2.presets.memory import format_bytes, load_bytes

print(format_bytes(load_bytes(backbone_config("gpt2_base_en"))))  # 949.40 MiB
```
"""

import os

from kgpt2.errors import InputError
from kgpt2.presets.gpt2_weights import count_parameters

FLOAT32_BYTES = 4
# Loading holds the built float32 variables and, while they are assigned,
# the arrays read from the weights file.
LOAD_COPIES = 2
# Vocabulary-sized float32 rows per generated sequence at each step: the
# logits, the sampler's processed logits and probabilities, and one XLA
# temporary.
GENERATION_LOGIT_COPIES = 4


def format_bytes(count):
    """Format a byte count in binary units ("1.50 GiB").

    Example:
    ```python
    from kgpt2.presets.memory import format_bytes

    print(format_bytes(3 * 2**29))  # 1.50 GiB
    ```
    """
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{count} B"


def _cgroup_limit():
    """The memory limit of this process's control group (containers), or None."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as file:
                text = file.read().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


def machine_memory_bytes():
    """This machine's memory in bytes (its container's limit if lower), or None if unknown.

    Example:
    ```python
    from kgpt2.presets.memory import machine_memory_bytes

    print(machine_memory_bytes() > 2**20)  # True
    ```
    """
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = None
    limits = [size for size in (physical, _cgroup_limit()) if size]
    return min(limits) if limits else None


def load_bytes(config):
    """Bytes loading a `GPT2Backbone` of `config` holds at its peak (float32 weights).

    Example:
    ```python
    from kgpt2.presets.catalog import backbone_config
    from kgpt2.presets.memory import load_bytes

    print(load_bytes(backbone_config("gpt2_tiny_random")) // 2**20, "MiB")  # 25 MiB
    ```
    """
    return LOAD_COPIES * FLOAT32_BYTES * count_parameters(config)


def generation_bytes_per_row(config, max_length):
    """Bytes one generated sequence of `max_length` tokens needs besides the weights.

    The key/value cache of every layer, the token ids, and the
    vocabulary-sized logits of each step.

    Example:
    ```python
    from kgpt2.presets.catalog import backbone_config
    from kgpt2.presets.memory import format_bytes, generation_bytes_per_row

    print(format_bytes(generation_bytes_per_row(backbone_config("gpt2_base_en"), 1024)))  # 72.77 MiB
    ```
    """
    cache = 2 * config["num_layers"] * max_length * config["hidden_dim"]
    logits = GENERATION_LOGIT_COPIES * config["vocabulary_size"]
    return FLOAT32_BYTES * (cache + logits + max_length)


def check_fits(needed, what, advice, error=InputError):
    """Raise `error` (an `InputError` class) if `needed` bytes exceed this machine's memory.

    The message says `what` needs about how much, how much memory there is,
    and `advice`.

    Example:
    ```python
    from kgpt2.presets.memory import check_fits

    check_fits(2**20, "a small model", "Load a smaller model.")
    ```
    """
    available = machine_memory_bytes()
    if available is not None and needed > available:
        raise error(
            f"{what} needs about {format_bytes(needed)} of memory, more than this "
            f"machine's {format_bytes(available)}. {advice}"
        )
