"""`NextTokenAccuracy` reports what Keras's accuracy reports, without an argmax."""

import keras
import numpy as np
import pytest

from kgpt2.training.accuracy import NextTokenAccuracy


@pytest.mark.parametrize("seed", [0, 1])
def test_weighted_accuracy_equals_keras_sparse_categorical_accuracy(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(3, 16, 97)).astype("float32")
    labels = rng.integers(0, 97, (3, 16))
    # A peaked row per sequence, so that some labels are right.
    labels[:, ::3] = logits[:, ::3].argmax(-1)
    weights = (rng.random((3, 16)) < 0.7).astype("float32")
    ours, keras_own = NextTokenAccuracy(), keras.metrics.SparseCategoricalAccuracy()
    ours.update_state(labels, logits, sample_weight=weights)
    keras_own.update_state(labels, logits, sample_weight=weights)
    assert 0.2 < float(keras_own.result()) < 0.9
    assert float(ours.result()) == pytest.approx(float(keras_own.result()), abs=1e-7)


def test_every_label_tied_for_the_largest_logit_counts_as_right():
    logits = np.array([[[1.0, 1.0, 0.5]]], "float32")
    metric = NextTokenAccuracy()
    for label in (0, 1, 2):
        metric.update_state(np.array([[label]]), logits)
    assert float(metric.result()) == pytest.approx(2 / 3)


def test_config_round_trips():
    metric = NextTokenAccuracy(name="token_accuracy")
    again = NextTokenAccuracy.from_config(metric.get_config())
    assert again.name == "token_accuracy" and again.get_config() == metric.get_config()
