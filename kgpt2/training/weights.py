"""Reading a GPT-2 model's LoRA rank, and copying weights between two models."""

from kgpt2.errors import InputError
from kgpt2.training.processes import host_array


def lora_rank_of(lm):
    """Return the LoRA rank enabled on `lm`'s backbone, or None.

    Example:
    ```python
    import kgpt2
    from kgpt2.training.weights import lora_rank_of

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    lm.backbone.enable_lora(4)
    print(lora_rank_of(lm))  # 4
    ```
    """
    for layer in lm.backbone._flatten_layers(include_self=False):
        if getattr(layer, "lora_enabled", False):
            return layer.lora_rank
    return None


def copy_weights(source, target):
    """Copy every backbone variable of `source` into `target` (two `GPT2CausalLM`s).

    Every variable, not only the weights: the dropout layers' seed states
    come along, so both models draw the same dropout masks. `target` gets
    LoRA first if `source` has it, so that both have the same variables.

    Raises:
        ValueError: the two backbones' variables differ (another architecture).

    Example:
    ```python
    import kgpt2
    from kgpt2.training.weights import copy_weights

    source = kgpt2.load("gpt2_tiny_random", sequence_length=32, seed=1)
    target = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    copy_weights(source, target)
    print(all((a == b).all() for a, b in zip(source.get_weights(), target.get_weights())))  # True
    ```
    """
    rank = lora_rank_of(source)
    if rank is not None and lora_rank_of(target) is None:
        target.backbone.enable_lora(rank)
    sources, targets = source.backbone.variables, target.backbone.variables
    if [tuple(v.shape) for v in sources] != [tuple(v.shape) for v in targets]:
        raise InputError(
            "Can't copy the weights: the two models' backbone variables "
            "differ (another architecture, or a backbone modified after it was built)."
        )
    for new, old in zip(sources, targets):
        # A value sharded across processes is gathered, one variable at a time.
        old.assign(host_array(new.value))
