"""Train one GPT-2 over several devices with `keras.distribution` (JAX).

- "data_parallel": `keras.distribution.DataParallel` over all local devices;
  weights are replicated and every batch is split across devices.
- "model_parallel": `keras.distribution.ModelParallel` on a (1, N) mesh with
  GPT-2's layout map (`kgpt2.training.gpt2_layout`); weights, gradients and
  Adam moments are sharded, every device sees the whole batch.

Keras lays a variable out when it is created, so a model built without a
distribution must be rebuilt under one: `prepare` does that with the
weights preserved, and `distributed` wraps it in the distribution's scope,
where compile and fit must run.
"""

import contextlib

from kgpt2.errors import InputError
from kgpt2.training import gpt2_layout
from kgpt2.training.weights import copy_weights

# The ways kgpt2 spreads training over devices; `kgpt2.plan` and the CLI use these names.
DISTRIBUTIONS = ("data_parallel", "model_parallel")


def _check_backend(name):
    import keras

    if keras.config.backend() != "jax":
        raise InputError(
            f"distribution={name!r} needs the JAX backend (keras.distribution "
            f"is JAX-only); the Keras backend is '{keras.config.backend()}'. "
            "Run with KERAS_BACKEND=jax."
        )


def get_distribution(name, config, devices=None):
    """Make the `keras.distribution.Distribution` for a GPT-2 backbone.

    Args:
        name: "data_parallel" or "model_parallel".
        config: the backbone config (`lm.backbone.get_config()`), which the
            model-parallel layout map needs.
        devices: devices to use; default `keras.distribution.list_devices()`.

    Example:
    ```python
    import kgpt2
    from kgpt2.training.distribution import get_distribution

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    print(get_distribution("data_parallel", lm.backbone.get_config()))
    ```
    """
    import keras

    if name not in DISTRIBUTIONS:
        raise InputError(
            f"distribution must be one of {', '.join(DISTRIBUTIONS)}; got {name!r}."
        )
    _check_backend(name)
    devices = list(devices or keras.distribution.list_devices())
    if name == "data_parallel":
        # kgpt2 shards the batches by process itself
        # (`kgpt2.training.processes.shard_batches`), also for generators.
        return keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    mesh = keras.distribution.DeviceMesh(
        shape=(1, len(devices)),
        axis_names=(gpt2_layout.BATCH_AXIS, gpt2_layout.MODEL_AXIS),
        devices=devices,
    )
    return keras.distribution.ModelParallel(
        layout_map=gpt2_layout.layout_map(mesh, config),
        batch_dim_name=gpt2_layout.BATCH_AXIS,
        auto_shard_dataset=False,
    )


def prepare(lm, distribution):
    """Rebuild `lm` with its variables laid out by `distribution`.

    Returns a new `GPT2CausalLM` with the same weights (and LoRA rank, if
    LoRA is enabled) and the same preprocessor. Compile and fit it inside
    `with distribution.scope():` so that Keras distributes each batch and
    lays out the optimizer's variables like their weights.

    Args:
        lm: a `keras_hub.models.GPT2CausalLM`.
        distribution: a `keras.distribution.Distribution` (see
            `get_distribution`).

    Example:
    ```python
    import kgpt2
    from kgpt2.training.distribution import get_distribution, prepare

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
    """Context manager: `lm` rebuilt under `distribution`, inside its scope.

    `distribution` is "data_parallel", "model_parallel" or None (then `lm`
    comes back unchanged and nothing is distributed), so a training loop can
    pass its argument straight through. Compile and fit inside the block;
    save after it (saving gathers the shards).

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
        yield prepare(lm, distribution)
