"""Variables drawn block by block hold the values Keras draws whole."""

import keras
import numpy as np
import pytest

from kgpt2.presets import sharded_variables


def _block(initializer, dtype, shape, indices, monkeypatch, chunk_bytes):
    import jax

    monkeypatch.setattr(sharded_variables, "CHUNK_BYTES", chunk_bytes)
    spec = sharded_variables._random_spec(initializer)
    return np.asarray(sharded_variables._random_block(spec, dtype, shape, indices, jax.devices()[0]))


@pytest.mark.slow
@pytest.mark.parametrize("initializer, dtype, shape, indices", [
    # a column shard, as the embeddings split
    (keras.initializers.RandomNormal(mean=0.1, stddev=0.02, seed=11), "float32",
     (300, 24), (slice(None), slice(12, 24))),
    # a head shard of a query kernel
    (keras.initializers.TruncatedNormal(stddev=0.5, seed=12), "bfloat16",
     (16, 6, 8), (slice(None), slice(3, 6), slice(None))),
    # a row shard
    (keras.initializers.RandomUniform(minval=-2.0, maxval=3.0, seed=13), "float32",
     (6, 8, 16), (slice(3, 6), slice(None), slice(None))),
])
def test_a_block_holds_the_slice_of_the_whole_draw(initializer, dtype, shape, indices, monkeypatch):
    whole = np.asarray(initializer(shape, dtype=dtype))[indices]
    # Chunks of 3 rows (the last overlapping the one before), and one chunk.
    row_bytes = whole[0].nbytes
    for chunk_bytes in (3 * row_bytes, 2**20):
        block = _block(initializer, dtype, shape, indices, monkeypatch, chunk_bytes)
        assert block.dtype == whole.dtype and block.shape == whole.shape
        np.testing.assert_array_equal(block, whole)


def test_blocks_differ_where_the_whole_draw_differs(monkeypatch):
    initializer = keras.initializers.RandomNormal(stddev=1.0, seed=3)
    left, right = (_block(initializer, "float32", (50, 8), (slice(None), part), monkeypatch, 2**20)
                   for part in (slice(0, 4), slice(4, 8)))
    assert not np.array_equal(left, right)
    assert abs(float(np.concatenate([left, right]).std()) - 1.0) < 0.15


def test_initializers_that_read_the_shape_are_left_to_keras():
    for initializer in (keras.initializers.GlorotUniform(seed=1),
                        keras.initializers.RandomNormal(seed=keras.random.SeedGenerator(1))):
        assert sharded_variables._random_spec(initializer) is None
