"""Train one GPT-2 over several devices with `keras.distribution` (JAX).

The layouts ("data_parallel", "model_parallel") and their distributions
are GPT-2's, in `kgpt2.presets.gpt2_layout`. Keras lays a variable out
when it is created, so a model is best created under its distribution
(`kgpt2.load(preset, distribution=...)`); one built without it is rebuilt
under it by `prepare`, with its weights copied. `distributed` does
whichever is needed and wraps the model in the distribution's scope,
where compile and fit must run.
"""

import contextlib

from kgpt2.presets.gpt2_layout import get_distribution
from kgpt2.training.weights import copy_weights


def laid_out(lm, distribution):
    """Whether every backbone variable of `lm` already has `distribution`'s layout.

    Example:
    ```python
    import kgpt2
    from kgpt2.presets.gpt2_layout import get_distribution
    from kgpt2.training.distribution import laid_out

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32, distribution="model_parallel")
    print(laid_out(lm, get_distribution("model_parallel", lm.backbone.get_config())))  # True
    ```
    """
    for variable in lm.backbone.variables:
        sharding = getattr(variable.value, "sharding", None)
        wanted = distribution.get_variable_layout(variable).backend_layout
        if sharding is None or not sharding.is_equivalent_to(wanted, len(variable.shape)):
            return False
    return True


@contextlib.contextmanager
def outside_distribution():
    """Context manager: no `keras.distribution` within the block, the current one again after it.

    Inside a distribution's scope Keras splits every batch's rows over the
    devices, which a batch smaller than the device count can't be: a single
    prompt, say. Outside, the computation takes the layout of its inputs, a
    model's variables laid out as they are, so every device computes the
    whole batch.

    Example:
    ```python
    import keras
    from kgpt2.training.distribution import outside_distribution

    with keras.distribution.DataParallel().scope():
        with outside_distribution():
            print(keras.distribution.distribution())  # None
        print(type(keras.distribution.distribution()).__name__)  # DataParallel
    ```
    """
    import keras

    current = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(current)


def prepare(lm, distribution):
    """Rebuild `lm` with its variables laid out by `distribution`.

    Returns a new `GPT2CausalLM` with the same weights (and LoRA rank, if
    LoRA is enabled) and the same preprocessor. Compile and fit it inside
    `with distribution.scope():` so that Keras distributes each batch and
    lays out the optimizer's variables like their weights.

    Args:
        lm: a `keras_hub.models.GPT2CausalLM`.
        distribution: a `keras.distribution.Distribution` (see
            `kgpt2.presets.gpt2_layout.get_distribution`).

    Example:
    ```python
    import kgpt2
    from kgpt2.presets.gpt2_layout import get_distribution
    from kgpt2.training.distribution import prepare

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    distribution = get_distribution("model_parallel", lm.backbone.get_config())
    lm = prepare(lm, distribution)
    with distribution.scope():
        lm.compile(optimizer="adam")
        lm.fit(["a line of text", "another one"], batch_size=2, epochs=1)
    ```
    """
    import keras_hub

    backbone = lm.backbone
    with distribution.scope():
        rebuilt = keras_hub.models.GPT2CausalLM(
            backbone=keras_hub.models.GPT2Backbone.from_config(backbone.get_config()),
            preprocessor=lm.preprocessor,
        )
        # All variables, not only weights: the dropout seed states come
        # along, so the rebuilt model draws the same dropout masks.
        copy_weights(lm, rebuilt)
        return rebuilt


@contextlib.contextmanager
def distributed(lm, distribution):
    """Context manager: `lm` laid out by `distribution`, inside its scope.

    `distribution` is "data_parallel", "model_parallel" or None (then `lm`
    comes back unchanged and nothing is distributed), so a training loop can
    pass its argument straight through. A model already laid out (created
    by `kgpt2.load(..., distribution=...)`) comes back as it is; any other
    is rebuilt under the distribution (`prepare`). Compile and fit inside
    the block; save after it (saving gathers the shards).

    Example:
    ```python
    import kgpt2
    from kgpt2.training.distribution import distributed

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    with distributed(lm, "data_parallel") as lm:
        lm.compile(optimizer="adam")
        lm.fit(["a line of text", "another one"], batch_size=2, epochs=1)
    ```
    """
    if distribution is None:
        yield lm
        return
    if isinstance(distribution, str):
        distribution = get_distribution(distribution, lm.backbone.get_config())
    with distribution.scope():
        yield lm if laid_out(lm, distribution) else prepare(lm, distribution)
