"""Per-row sampling for continuous batches: the cuts and the draw, exactly."""

import jax
import numpy as np
import pytest

from kgpt2.generation.row_sampling import SamplingOptions
from kgpt2.generation.row_sampling import needed_features
from kgpt2.generation.row_sampling import sample_rows

# Compiled as the batching engine compiles it (op by op it is slow).
_sample_rows = jax.jit(sample_rows, static_argnums=5)


def _sample(logits, rows, uniforms):
    logits = np.asarray(logits, "float32")
    history = np.zeros((len(rows), 4), "int32")
    index = np.ones(len(rows), "int32")
    return np.asarray(_sample_rows(logits, history, index, SamplingOptions.stack(rows),
                                   np.asarray(uniforms, "float32"), needed_features(rows)))


def _inverse_cdf(probabilities, u):
    """The reference draw: the token covering (1 - u) of the mass, by a plain cumsum."""
    cumulative = np.cumsum(probabilities / probabilities.sum())
    # Rounding must not carry the lookup past the last token with any odds.
    last = int(np.flatnonzero(probabilities)[-1])
    return min(int(np.searchsorted(cumulative, 1.0 - u, side="left")), last)


@pytest.mark.slow  # about 4 s: compiles sample_rows twice
def test_top_p_keeps_the_whole_nucleus_even_when_it_is_wide():
    # 3,000 tokens of slowly falling probability: the p=0.9 nucleus holds
    # about 2,700 of them, wider than any sort of the top candidates.
    vocab = 3000
    logits = -np.arange(vocab, dtype="float32") * 1e-4
    probabilities = np.exp(logits) / np.exp(logits).sum()
    cumulative = np.cumsum(probabilities)
    nucleus = int(np.searchsorted(cumulative, 0.9, side="left")) + 1
    kept = probabilities[:nucleus]
    uniforms = np.array([0.0, 0.01, 0.25, 0.5, 0.75, 0.999], "float32")
    rows = [SamplingOptions(top_p=0.9)] * len(uniforms)
    drawn = _sample(np.tile(logits, (len(rows), 1)), rows, uniforms)
    expected = [_inverse_cdf(kept, u) for u in uniforms]
    assert nucleus > 2000
    assert np.abs(drawn - np.array(expected)).max() <= 1, (drawn, expected)
    assert drawn.max() < nucleus and drawn[0] > 2000


@pytest.mark.slow
def test_rows_keep_their_own_top_k_and_top_p_and_draw_by_the_kept_odds():
    probabilities = np.array([0.4, 0.3, 0.2, 0.1], "float32")
    settings = {  # the kept tokens, as kgpt2's TopK/TopPSampler keep them
        "top_p=0.6": (SamplingOptions(top_p=0.6), [0, 1]),
        "top_k=3": (SamplingOptions(top_k=3), [0, 1, 2]),
        # Top-p's mass is measured on the whole distribution: 0.4 < 0.42.
        "top_k=3, top_p=0.42": (SamplingOptions(top_k=3, top_p=0.42), [0, 1]),
        "top_k=2, top_p=0.9": (SamplingOptions(top_k=2, top_p=0.9), [0, 1]),
        "neither": (SamplingOptions(), [0, 1, 2, 3]),
    }
    grid = np.linspace(0.0, 0.999, 37, dtype="float32")
    rows = [options for options, _ in settings.values() for _ in grid]
    drawn = _sample(np.tile(np.log(probabilities), (len(rows), 1)), rows,
                    np.tile(grid, len(settings))).reshape(len(settings), len(grid))
    for tokens, (name, (_, kept)) in zip(drawn, settings.items()):
        odds = np.zeros_like(probabilities)
        odds[kept] = probabilities[kept]
        assert list(tokens) == [_inverse_cdf(odds, u) for u in grid], name
