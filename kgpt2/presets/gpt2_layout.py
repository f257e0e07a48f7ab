"""How kgpt2 lays GPT-2 out over devices: the `keras.distribution` of each layout.

- "data_parallel": `keras.distribution.DataParallel` over all devices;
  weights are replicated and every batch is split across devices.
- "model_parallel": `keras.distribution.ModelParallel` on a (1, N) mesh with
  GPT-2's layout map below; weights, gradients and Adam moments are
  sharded, every device sees the whole batch.

The devices are those of every process once `kgpt2.connect_processes` has
joined a group, so a layout can span hosts.

How `model_parallel` shards GPT-2's weights over a ("batch", "model") mesh:

KerasHub's `GPT2Backbone` has no `get_layout_map` (Gemma and Llama do), so
this is GPT-2's, in the Megatron-LM pattern: the query/key/value and the
first feed-forward projection split their outputs (attention heads, inner
units) across devices, the attention output and second feed-forward
projection split their inputs, so each transformer block needs one
all-reduce after attention and one after the feed-forward. Embeddings split
their hidden axis (the 50257-token vocabulary divides by no device count).
Layer norms and output biases stay replicated: they are tiny.

The same rules drive `kgpt2.plan`'s per-device byte counts, so the planner
and the real layout cannot drift apart.
"""

import re

from kgpt2.errors import InputError

MODEL_AXIS = "model"
BATCH_AXIS = "batch"
# The ways kgpt2 spreads a model over devices; `kgpt2.plan` and the CLI use these names.
DISTRIBUTIONS = ("data_parallel", "model_parallel")


def _heads_split(config, shards):
    """Whether attention splits by head (True) or inside heads (False)."""
    if config["num_heads"] % shards == 0:
        return True
    head_dim = config["hidden_dim"] // config["num_heads"]
    if head_dim % shards == 0:
        return False
    raise InputError(
        f"model_parallel over {shards} devices needs num_heads "
        f"({config['num_heads']}) or the head size ({head_dim}) to be "
        f"divisible by {shards}; use a device count that divides one of them."
    )


def model_parallel_axes(config, shards):
    """Map variable-path regexes to per-axis mesh names (None: replicated).

    Example:
    ```python
    from kgpt2.presets.catalog import backbone_config
    from kgpt2.presets.gpt2_layout import model_parallel_axes

    axes = model_parallel_axes(backbone_config("gpt2_base_en"), shards=2)
    print(axes[".*/feedforward_intermediate_dense/kernel"])  # (None, 'model')
    ```
    """
    for key in ("hidden_dim", "intermediate_dim"):
        if config[key] % shards:
            raise InputError(
                f"model_parallel over {shards} devices needs {key} "
                f"({config[key]}) to be divisible by {shards}."
            )
    m = MODEL_AXIS
    if _heads_split(config, shards):
        qkv, qkv_bias, out, lora_a, lora_b = (
            (None, m, None), (m, None), (m, None, None), (None, m, None), (None, None))
    else:
        qkv, qkv_bias, out, lora_a, lora_b = (
            (None, None, m), (None, m), (None, m, None), (None, None, None), (None, m))
    return {
        "token_embedding/embeddings": (None, m),
        "position_embedding/embeddings": (None, m),
        ".*/self_attention/(query|key|value)/kernel": qkv,
        ".*/self_attention/(query|key|value)/bias": qkv_bias,
        ".*/self_attention/(query|value)/lora_kernel_a": lora_a,
        ".*/self_attention/(query|value)/lora_kernel_b": lora_b,
        ".*/self_attention/attention_output/kernel": out,
        ".*/feedforward_intermediate_dense/kernel": (None, m),
        ".*/feedforward_intermediate_dense/bias": (m,),
        ".*/feedforward_output_dense/kernel": (m, None),
    }


def attention_scores_split(config, shards):
    """Whether attention scores are split across the model-parallel devices."""
    return shards == 1 or _heads_split(config, shards)


def axes_for(path, axes_by_pattern):
    """The axes of one variable path, or None when it is replicated."""
    matches = [axes for pattern, axes in axes_by_pattern.items()
               if re.fullmatch(pattern, path)]
    return matches[0] if matches else None


def layout_map(device_mesh, config):
    """Build the `keras.distribution.LayoutMap` for a GPT-2 backbone.

    Args:
        device_mesh: a `keras.distribution.DeviceMesh` with axes
            ("batch", "model").
        config: the backbone config (`backbone.get_config()` or
            `kgpt2.presets.catalog.backbone_config(name)`).

    Example:
    ```python
    import keras
    from kgpt2.presets.catalog import backbone_config
    from kgpt2.presets.gpt2_layout import layout_map

    devices = keras.distribution.list_devices()
    mesh = keras.distribution.DeviceMesh((1, len(devices)), ("batch", "model"), devices)
    layouts = layout_map(mesh, backbone_config("gpt2_tiny_random"))
    distribution = keras.distribution.ModelParallel(layout_map=layouts, batch_dim_name="batch")
    ```
    """
    import keras

    shards = device_mesh.shape[device_mesh.axis_names.index(MODEL_AXIS)]
    layouts = keras.distribution.LayoutMap(device_mesh)
    for pattern, axes in model_parallel_axes(config, shards).items():
        layouts[pattern] = axes
    return layouts


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
        config: the backbone config (`lm.backbone.get_config()` or
            `kgpt2.presets.catalog.backbone_config(name)`), which the
            model-parallel layout map needs.
        devices: devices to use; default `keras.distribution.list_devices()`
            (every process's, in a process group).

    Example:
    ```python
    from kgpt2.presets.catalog import backbone_config
    from kgpt2.presets.gpt2_layout import get_distribution

    print(get_distribution("data_parallel", backbone_config("gpt2_tiny_random")))
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
        shape=(1, len(devices)), axis_names=(BATCH_AXIS, MODEL_AXIS), devices=devices,
    )
    return keras.distribution.ModelParallel(
        layout_map=layout_map(mesh, config), batch_dim_name=BATCH_AXIS, auto_shard_dataset=False,
    )
