"""OpenAI's logits rules (presence / frequency penalty, logit_bias, min_tokens):
their math against numpy, and one implementation for `kgpt2.generate`'s
samplers and the batching engine."""

import numpy as np
import pytest
from keras import ops

import kgpt2
from kgpt2.generation.prompts import tokenize_prompt
from kgpt2.generation.row_sampling import SamplingOptions
from kgpt2.samplers import logits_processing as lp


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def test_presence_and_frequency_penalties_follow_openai_per_row():
    rng = np.random.default_rng(0)
    vocab = 7
    history = rng.integers(0, vocab, size=(3, 12)).astype("int32")
    logits = rng.normal(size=(3, vocab)).astype("float32")
    start = np.array([2, 5, 0])  # each row's prompt length
    index = np.array([9, 12, 4])  # tokens so far
    presence = np.array([0.5, -1.0, 2.0], "float32")
    frequency = np.array([0.25, 1.5, 0.0], "float32")
    counts = lp.token_counts(history, lp.written_mask(history, index, start), vocab)
    got = _numpy(lp.apply_presence_frequency_penalty(logits, counts, presence, frequency))
    for row in range(3):
        c = np.bincount(history[row, start[row]:index[row]], minlength=vocab)
        want = logits[row] - c * frequency[row] - (c > 0) * presence[row]
        np.testing.assert_allclose(got[row], want, rtol=1e-6)
    assert not np.allclose(got, logits)


def test_logit_bias_adds_and_minus_100_bans():
    logits = np.zeros((2, 5), "float32")
    got = _numpy(lp.apply_logit_bias(logits, np.array([[1, 4], [2, 0]]),
                                     np.array([[3.0, -100.0], [-2.5, 0.0]])))
    np.testing.assert_allclose(got[0, :4], [0, 3, 0, 0])
    assert got[0, 4] == lp.BANNED_LOGIT
    np.testing.assert_allclose(got[1], [0, 0, -2.5, 0, 0])
    with pytest.raises(kgpt2.Error, match="logit_bias"):
        lp.logit_bias_pairs("x", {"3": 101})
    with pytest.raises(kgpt2.Error, match="outside the vocabulary"):
        lp.logit_bias_pairs("x", {"9": 1}, vocabulary_size=5)


def test_min_new_tokens_bans_the_stop_tokens_until_reached():
    logits = np.zeros((3, 4), "float32")
    got = _numpy(lp.apply_min_new_tokens(logits, np.array([0, 1, 2]), 2, (3, 1)))
    assert (got[:2, [1, 3]] == lp.BANNED_LOGIT).all() and (got[:2, [0, 2]] == 0).all()
    assert (got[2] == 0).all()


def test_repetition_rules_take_scalars_or_one_value_per_row():
    rng = np.random.default_rng(1)
    history = rng.integers(0, 6, size=(2, 10)).astype("int32")
    logits = rng.normal(size=(2, 6)).astype("float32")
    both = _numpy(lp.apply_repetition_penalty(logits, history, np.array([3, 8]),
                                              np.array([1.5, 3.0])))
    for row, (index, penalty) in enumerate([(3, 1.5), (8, 3.0)]):
        alone = _numpy(lp.apply_repetition_penalty(logits[row:row + 1], history[row:row + 1],
                                                   index, penalty))
        np.testing.assert_allclose(both[row], alone[0])
    banned = _numpy(lp.banned_ngram_mask(history, np.array([4, 10]), 2, 6))
    for row, index in enumerate([4, 10]):
        alone = _numpy(lp.banned_ngram_mask(history[row:row + 1], index, 2, 6))
        assert (banned[row] == alone[0]).all()


def _ids(lm, prompt):
    return tokenize_prompt(lm, prompt)


def _generate(lm, prompt, new_tokens, **options):
    sampler = kgpt2.samplers.get("greedy", **options)
    ids = _ids(lm, prompt)
    return kgpt2.generate(lm, prompt, sampler=sampler, max_length=len(ids) + new_tokens,
                          include_prefix=False, stop_token_ids=None)[0]


@pytest.mark.slow
def test_generate_and_the_engine_apply_the_same_openai_rules(tiny_lm):
    from kgpt2.generation.batching_engine import BatchingEngine

    prompt = "The quick brown fox"
    plain = _generate(tiny_lm, prompt, 12)
    first = int(tiny_lm.preprocessor.tokenizer(plain)[0])
    settings = [
        {"frequency_penalty": 2.0},
        {"presence_penalty": 1.5, "frequency_penalty": 0.5},
        {"logit_bias": {str(first): -100, "13": 5.0}},
    ]
    engine = BatchingEngine(tiny_lm, max_batch_size=3)
    try:
        jobs = [engine.submit(_ids(tiny_lm, prompt), 12,
                              SamplingOptions.from_sampler("greedy", **options),
                              stop_token_ids=())
                for options in settings]
        served = [job.result(timeout=300)[0]["text"] for job in jobs]
    finally:
        engine.close()
    generated = [_generate(tiny_lm, prompt, 12, **options) for options in settings]
    assert served == generated
    # Each rule changed the greedy text; the banned first token is gone.
    assert all(text != plain for text in generated)
    assert first not in [int(i) for i in tiny_lm.preprocessor.tokenizer(generated[2])]


@pytest.mark.slow
def test_penalties_count_generated_tokens_not_the_prompt(tiny_lm):
    # A prompt of one repeated word: a presence penalty over the prompt too
    # would push that word down from the first step; OpenAI's counts only
    # what was generated, so the first new token is the plain greedy one.
    prompt = " there there there"
    plain = _generate(tiny_lm, prompt, 1)
    assert _generate(tiny_lm, prompt, 1, presence_penalty=2.0) == plain
