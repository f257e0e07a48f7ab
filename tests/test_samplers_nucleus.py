"""The sort-free top-p cut keeps what a full sort keeps, and draws fairly."""

import keras
import keras_hub
import numpy as np
import pytest
from scipy import stats

import kgpt2
from kgpt2.samplers.nucleus import draw
from kgpt2.samplers.nucleus import nucleus_mask


def mass_before(probabilities):
    """Per token, the float64 mass of the tokens ranked above it (a full sort)."""
    order = np.argsort(-probabilities, axis=-1, kind="stable")
    ranked = np.take_along_axis(probabilities.astype("float64"), order, axis=-1)
    before = np.zeros_like(ranked)
    np.put_along_axis(before, order, np.cumsum(ranked, axis=-1) - ranked, axis=-1)
    return before


def sorted_nucleus(probabilities, p):
    """KerasHub's rule by a full sort: keep a token while the mass before it is < p."""
    return mass_before(probabilities) < p


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 0.999, 1.0])
def test_nucleus_mask_equals_a_full_sort_on_gpt2_sized_rows(p):
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=3.0, size=(4, 50257)).astype("float32")
    probabilities = np.asarray(keras.ops.softmax(logits), "float32")
    kept = np.asarray(nucleus_mask(probabilities, p))
    # float32 sums in another order may decide a token whose mass before
    # it is within rounding of p either way; nothing else may differ.
    clear = np.abs(mass_before(probabilities) - p) > 1e-5
    if p < 1:
        assert clear.sum() > 0.99 * clear.size
    np.testing.assert_array_equal(kept[clear], sorted_nucleus(probabilities, p)[clear])
    assert kept.sum() >= (4 if p < 1 else probabilities.size)


def test_nucleus_mask_after_min_p_is_the_full_distributions_cut():
    rng = np.random.default_rng(3)
    probabilities = rng.dirichlet(np.ones(1000), size=3).astype("float32")
    cut = np.where(probabilities >= 0.2 * probabilities.max(-1, keepdims=True), probabilities, 0)
    for p in (0.1, 0.6):
        expected = sorted_nucleus(probabilities, p) & (cut > 0)
        kept = np.asarray(nucleus_mask(cut, p)) & (cut > 0)
        np.testing.assert_array_equal(kept, expected)


@pytest.mark.slow
def test_draw_follows_the_probabilities_and_never_picks_a_zero():
    probabilities = np.tile(np.array([[0.0, 0.1, 0.2, 0.0, 0.3, 0.4]], "float32"), (20000, 1))
    tokens = np.asarray(draw(probabilities, keras.random.SeedGenerator(5)))
    counts = np.bincount(tokens, minlength=6)
    assert counts[0] == counts[3] == 0
    assert stats.chisquare(counts[[1, 2, 4, 5]], 20000 * np.array([0.1, 0.2, 0.3, 0.4])).pvalue > 1e-3


@pytest.mark.slow
def test_top_p_sampler_draws_like_keras_hubs_full_sort():
    rng = np.random.default_rng(11)
    row = rng.dirichlet(np.full(50, 0.3)).astype("float32")
    probabilities = np.tile(row[None], (20000, 1))
    ours = kgpt2.samplers.TopPSampler(p=0.8, seed=1)
    reference = keras_hub.samplers.TopPSampler(p=0.8, seed=1)
    for sampler in (ours, reference):
        sampler.seed_generator = keras.random.SeedGenerator(1)
    counts = [
        np.bincount(np.asarray(sampler.get_next_token(probabilities)), minlength=50)
        for sampler in (ours, reference)
    ]
    assert set(np.flatnonzero(counts[0])) == set(np.flatnonzero(sorted_nucleus(row[None], 0.8)[0]))
    table = np.stack(counts)[:, counts[1] > 0]
    assert stats.chi2_contingency(table).pvalue > 1e-3


@pytest.mark.parametrize("only", [0, 255, 256, 50256])
def test_draw_finds_a_lone_token_at_block_edges(only):
    probabilities = np.zeros((2, 50257), "float32")
    probabilities[:, only] = 0.5
    tokens = np.asarray(draw(probabilities, keras.random.SeedGenerator(0)))
    assert tokens.tolist() == [only, only]
