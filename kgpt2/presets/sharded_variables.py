"""Create a model's variables laid out, each process drawing only its own blocks.

Keras creates a laid-out variable by drawing it whole and splitting it, or,
for a big one, with one sharded program that keeps several shard-sized
temporaries; either way a process pays more than the shards it keeps.
Here each device's block is drawn by itself, a few MiB at a time, into its
buffer, with the values Keras would draw: JAX's partitionable threefry
(`jax_threefry_partitionable`, on by default) gives element n of a random
array the bits threefry(key, n), so a block's bits follow from its elements'
flat indices. A PRNG implementation whose key also carries the block's
offset and strides hands those bits to the initializer itself
(`keras.random.normal` and friends), so the arithmetic is Keras's own.

Initializers that are not elementwise in those bits (variance scaling
reads the shape; a `SeedGenerator` seed is stateful) and anything else go
through Keras's own path.
"""

import functools
import math

import numpy as np

# Bytes a block is drawn in at most at once: the draw keeps a few temporaries
# of this size.
CHUNK_BYTES = 2**20
# Ranks up to this take the block path (GPT-2's variables have at most 3).
MAX_RANK = 4


def _random_classes():
    import keras

    return (keras.initializers.RandomNormal, keras.initializers.TruncatedNormal,
            keras.initializers.RandomUniform)


def _constant_classes():
    import keras

    return (keras.initializers.Zeros, keras.initializers.Ones)


def _block_bits(key_data, bit_width, shape):
    """Threefry bits of a block: `key_data` is (k1, k2, base, *strides)."""
    from jax import lax
    from jax.extend.random import threefry2x32_p

    k1, k2, base = key_data[0], key_data[1], key_data[2]
    strides = key_data[3 + MAX_RANK - len(shape):]
    counts = base + sum(
        (lax.broadcasted_iota(np.uint32, shape, axis) * strides[axis] for axis in range(len(shape))),
        np.uint32(0),
    )
    # The high words of flat indices below 2**32 are 0 (checked by the caller).
    bits1, bits2 = threefry2x32_p.bind(k1, k2, lax.full_like(counts, 0), counts)
    bits = bits1 ^ bits2
    return bits if bit_width == 32 else lax.convert_element_type(bits, np.dtype(f"uint{bit_width}"))


def _unsupported(*args):
    raise NotImplementedError("kgpt2's block keys only draw bits")


@functools.lru_cache(maxsize=None)
def _block_impl():
    from jax.extend.random import define_prng_impl

    return define_prng_impl(
        key_shape=(3 + MAX_RANK,), seed=_unsupported, split=_unsupported,
        random_bits=_block_bits, fold_in=_unsupported, name="kgpt2_threefry_block",
    )


def _draw(initializer_class, config, dtype, shape, key_data):
    import jax

    # An explicit seed: without one the constructor would draw a default
    # seed from Python's global generator, changing later draws.
    initializer = initializer_class(seed=0, **config)
    initializer.seed = jax.random.wrap_key_data(key_data, impl=_block_impl())
    return initializer(shape, dtype=dtype)


@functools.lru_cache(maxsize=None)
def _writing_program():
    import jax
    from jax import lax

    def write(buffer, chunk, row):
        return lax.dynamic_update_slice(buffer, chunk, (row,) + (0,) * (chunk.ndim - 1))

    return jax.jit(write, donate_argnums=0)


def _random_spec(initializer):
    """(class, config without seed, (k1, k2)) for a blockwise drawable initializer, else None."""
    if type(initializer) not in _random_classes() or not isinstance(initializer.seed, int):
        return None
    config = {k: v for k, v in initializer.get_config().items() if k != "seed"}
    # What keras.random draws with for an integer seed (`draw_seed`).
    return type(initializer), tuple(sorted(config.items())), (initializer.seed & 0xFFFFFFFF, 0)


def _random_block(spec, dtype, shape, indices, device):
    """The block `indices` of the variable, drawn on `device` a chunk at a time."""
    import jax
    import jax.numpy as jnp

    initializer_class, config, (k1, k2) = spec
    starts = [index.start or 0 for index in indices]
    block = tuple(len(range(*index.indices(size))) for index, size in zip(indices, shape))
    strides = [math.prod(shape[axis + 1:]) for axis in range(len(shape))]
    padding = [0] * (MAX_RANK - len(shape))

    def key_data(row):
        base = sum(start * stride for start, stride in zip(starts, strides)) + row * strides[0]
        return jax.device_put(np.array([k1, k2, base, *padding, *strides], np.uint32), device)

    row_bytes = math.prod(block[1:]) * jnp.dtype(dtype).itemsize
    rows = max(1, CHUNK_BYTES // max(1, row_bytes))
    # Drawn op by op, as Keras draws: one compiled program would fuse the
    # initializer's scaling and round differently.
    if not block or rows >= block[0]:
        return _draw(initializer_class, dict(config), dtype, block, key_data(0))
    chunk_shape = (rows, *block[1:])
    buffer = jnp.zeros(block, dtype, device=device)
    for row in range(0, block[0], rows):
        # The last chunk overlaps the one before: same elements, same values.
        row = min(row, block[0] - rows)
        chunk = _draw(initializer_class, dict(config), dtype, chunk_shape, key_data(row))
        buffer = _writing_program()(buffer, chunk, np.int32(row))
        del chunk
    return buffer


def _constant_block(initializer, dtype, shape, indices, device):
    import jax

    block = tuple(len(range(*index.indices(size))) for index, size in zip(indices, shape))
    return jax.device_put(initializer(block, dtype=dtype), device)


def _laid_out_value(variable, sharding):
    """The variable's value drawn block by block under `sharding`, or None for Keras's path."""
    import jax
    import jax.numpy as jnp

    initializer, shape, dtype = variable._initializer, tuple(variable.shape), variable._dtype
    if len(shape) > MAX_RANK or jnp.dtype(dtype).itemsize > 4:
        return None
    if type(initializer) in _constant_classes():
        make = functools.partial(_constant_block, initializer)
    else:
        spec = _random_spec(initializer)
        partitionable = jax.config.jax_threefry_partitionable and (
            jax.config.jax_default_prng_impl == "threefry2x32")
        if spec is None or not partitionable or math.prod(shape) >= 2**32 or not shape:
            return None
        make = functools.partial(_random_block, spec)
    blocks = [make(dtype, shape, indices, device)
              for device, indices in sharding.addressable_devices_indices_map(shape).items()]
    return jax.make_array_from_single_device_arrays(shape, sharding, blocks)


def initialize_laid_out(variables, distribution):
    """Initialize `variables`, created deferred, under `distribution`'s layouts.

    Create the model in `keras.StatelessScope(initialize_variables=False)`
    (its variables then wait uninitialized), then call this in the
    distribution's scope. Every device draws only its block of each
    variable, a few MiB at a time; the values are those Keras draws.

    Example:
    ```python
    import keras, keras_hub
    from kgpt2.presets.catalog import backbone_config
    from kgpt2.presets.gpt2_layout import get_distribution
    from kgpt2.presets.sharded_variables import initialize_laid_out

    config = backbone_config("gpt2_tiny_random")
    distribution = get_distribution("model_parallel", config)
    with distribution.scope():
        with keras.StatelessScope(initialize_variables=False):
            backbone = keras_hub.models.GPT2Backbone(**config)
        initialize_laid_out(backbone.variables, distribution)
    print(backbone.token_embedding.embeddings.value.sharding)
    ```
    """
    for variable in variables:
        if variable._value is not None:
            continue
        layout = distribution.get_variable_layout(variable)
        value = None if layout is None else _laid_out_value(variable, layout.backend_layout)
        if value is None:
            variable._deferred_initialize()
        else:
            # Keras keeps a value already laid out as its layout says.
            variable._initialize(value)
            variable._initializer = None
    forget_deferred()


def forget_deferred():
    """Drop the deferred variables that have a value now from Keras' pending list.

    Keras initializes the variables it deferred (created in
    `keras.StatelessScope(initialize_variables=False)`) when a later
    stateless scope ends, and fails on one that already has a value.

    Example:
    ```python
    import keras
    from kgpt2.presets.sharded_variables import forget_deferred

    with keras.StatelessScope(initialize_variables=False):
        layer = keras.layers.Dense(2)
        layer.build((None, 3))
    for variable in layer.variables:
        variable.assign(keras.ops.zeros(variable.shape))
    forget_deferred()
    with keras.StatelessScope():
        pass  # nothing left to initialize
    print(float(layer.kernel.numpy().sum()))  # 0.0
    ```
    """
    from keras.src.backend.common import global_state

    pending = global_state.get_global_attribute("uninitialized_variables") or []
    global_state.set_global_attribute(
        "uninitialized_variables", [v for v in pending if v._value is None])
