"""What `kgpt2.bench.run` can measure, and the check of a request.

Cheap to import (no Keras): the `kgpt2 bench` command reads the choices
below to build its options.

The generation protocol is the HF transformers peer script's too, so the
two compare as ratios: a prompt of `prompt_length` token ids built from
"The quick brown fox" (`PROMPT_TOKEN_IDS`), `new_tokens` new tokens, no early
stop, the samplers' options in `SAMPLER_OPTIONS`.
"""

from kgpt2.checks import check_integer
from kgpt2.errors import InputError
from kgpt2.presets.sequence_length import MAX_SEQUENCE_LENGTH

SUPPORTED_BACKENDS = ("jax", "tensorflow")
# "kgpt2": kgpt2.generation.generate_token_ids. "keras_hub": plain
# GPT2CausalLM.generate on token ids with the preprocessor detached.
IMPLS = ("kgpt2", "keras_hub")
DEFAULT_IMPLS = ("kgpt2",)
# The HF transformers peer's rows carry this impl (see `kgpt2.bench.hf`).
HF_IMPL = "hf-transformers-torch"
# Precisions the model can be loaded in besides its own (see `kgpt2.load`).
DTYPES = ("float32", "bfloat16", "float16")
# "The quick brown fox" in GPT-2's vocabulary.
PROMPT_TOKEN_IDS = (464, 2068, 7586, 21831)
# The options of the HF peer script, so that sampled runs compare too.
SAMPLER_OPTIONS = {
    "greedy": {},
    "top_k": {"k": 5},
    "top_p": {"p": 0.9},
}


def check_choices(name, values, allowed):
    """Return `values` as a list if it is a non-empty subset of `allowed`, without repeats.

    Example:
    ```python
    from kgpt2.bench.settings import check_choices

    print(check_choices("samplers", ("greedy",), ["greedy", "top_k"]))  # ['greedy']
    ```
    """
    values = list(values)
    if not values:
        raise InputError(f"{name} is empty; choose one or more of {', '.join(allowed)}.")
    for value in values:
        if value not in allowed:
            raise InputError(f"Unknown {name[:-1]} {value!r}; choose from {', '.join(allowed)}.")
    if len(set(values)) != len(values):
        raise InputError(f"{name} lists a value twice: {values}.")
    return values


def _check_length(what, length):
    if length > MAX_SEQUENCE_LENGTH:
        raise InputError(f"{what} exceeds GPT-2's {MAX_SEQUENCE_LENGTH} positions.")


def _check_train(settings):
    train = list(settings["train"])
    if len(train) != 2:
        raise InputError(f"train must be (batch_size, sequence_length), got {settings['train']!r}.")
    check_integer(None, "train batch size", train[0], minimum=1)
    check_integer(None, "train sequence length", train[1], minimum=2)
    _check_length(f"train sequence length {train[1]}", train[1])
    check_integer(None, "train_warmup_steps", settings["train_warmup_steps"], minimum=1)
    check_integer(None, "train_steps", settings["train_steps"],
                  minimum=settings["train_warmup_steps"] + 1)
    return train


def check_settings(settings):
    """Validate benchmark settings before anything slow runs; return them.

    Raises:
        kgpt2.errors.InputError: naming the setting, the value and what is allowed.

    Example:
    ```python
    from kgpt2.bench.settings import check_settings

    settings = check_settings(dict(
        preset="gpt2_tiny_random", batch_sizes=(1,), samplers=["greedy"],
        impls=["keras_hub"], prompt_length=4, new_tokens=8, calls=3,
        train=None, train_steps=7, train_warmup_steps=2))
    print(settings["batch_sizes"], settings["dtype"])  # [1] None
    ```
    """
    settings = dict(settings)
    settings["batch_sizes"] = list(settings["batch_sizes"])
    if not settings["batch_sizes"]:
        raise InputError("batch_sizes is empty; give at least one batch size, e.g. 1,8.")
    for batch_size in settings["batch_sizes"]:
        check_integer(None, "each batch size", batch_size, minimum=1)
    settings["samplers"] = check_choices("samplers", settings["samplers"], list(SAMPLER_OPTIONS))
    settings["impls"] = check_choices("impls", settings["impls"], IMPLS)
    settings["dtype"] = settings.get("dtype")
    if settings["dtype"] is not None and settings["dtype"] not in DTYPES:
        raise InputError(
            f"dtype {settings['dtype']!r} is not supported; choose from "
            f"{', '.join(DTYPES)} (or None: the preset's own)."
        )
    check_integer(None, "prompt_length", settings["prompt_length"], minimum=1)
    check_integer(None, "new_tokens", settings["new_tokens"], minimum=1)
    check_integer(None, "calls", settings["calls"], minimum=2)
    total = settings["prompt_length"] + settings["new_tokens"]
    _check_length(f"prompt_length + new_tokens = {total}", total)
    settings["mixed_precision"] = settings.get("mixed_precision", False)
    if not isinstance(settings["mixed_precision"], bool):
        raise InputError(f"mixed_precision must be True or False, got {settings['mixed_precision']!r}.")
    if settings["train"] is not None:
        settings["train"] = _check_train(settings)
    return settings
