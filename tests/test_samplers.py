"""kgpt2.samplers: registry, options, serialization, the logits math against
numpy references, and equality with KerasHub's samplers when neutral.

Backend-neutral: test_samplers_tensorflow.py runs this file again with
KERAS_BACKEND=tensorflow (XLA-compiled generate)."""

import json
import os

import keras
import keras_hub
import numpy as np
import pytest
from samplers_reference import assert_each_token_is_argmax
from samplers_reference import banned_ngram_tokens
from samplers_reference import generate_ids
from samplers_reference import next_token_logits
from samplers_reference import repeated_ngrams
from samplers_reference import repetition_penalty

import kgpt2
from kgpt2.samplers import logits_processing

NAMES = ["greedy", "random", "top_k", "top_p", "beam", "contrastive"]
PROMPTS = ["The quick brown fox", "Hello"]


@pytest.fixture(scope="module")
def lm():
    """This module's own tiny model: tests recompile it with their samplers."""
    return kgpt2.load("gpt2_tiny_random", sequence_length=64)


# --- registry and options -------------------------------------------------


def test_runs_on_the_requested_backend():
    assert keras.config.backend() == os.environ.get("KERAS_BACKEND", "jax")


def test_import_kgpt2_stays_light():
    import subprocess
    import sys

    code = "import sys, kgpt2; kgpt2.samplers; print('keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("name", NAMES)
def test_get_returns_keras_hub_subclasses(name):
    sampler = kgpt2.samplers.get(name)
    assert isinstance(sampler, keras_hub.samplers.Sampler)
    keras_hub_class = getattr(keras_hub.samplers, type(sampler).__name__)
    assert isinstance(sampler, keras_hub_class)
    assert sampler.repetition_penalty == 1.0 and sampler.no_repeat_ngram_size == 0


def test_get_accepts_cli_spellings_and_objects():
    assert isinstance(kgpt2.samplers.get("Top-K", k=3), kgpt2.samplers.TopKSampler)
    existing = keras_hub.samplers.TopPSampler(p=0.5)
    assert kgpt2.samplers.get(existing) is existing
    with pytest.raises(ValueError, match="options only apply to a sampler name"):
        kgpt2.samplers.get(existing, temperature=0.5)


def test_none_options_keep_defaults():
    sampler = kgpt2.samplers.get("top_p", p=None, k=None, seed=None, min_p=None)
    assert sampler.get_config() == kgpt2.samplers.TopPSampler().get_config()


def test_unknown_name_lists_samplers():
    with pytest.raises(ValueError) as info:
        kgpt2.samplers.get("nucleus")
    assert "'nucleus'" in str(info.value)
    for name in NAMES:
        assert name in str(info.value)


def test_unknown_option_lists_allowed_options():
    with pytest.raises(ValueError) as info:
        kgpt2.samplers.get("greedy", k=5, seed=1)
    message = str(info.value)
    assert "'greedy' does not take k, seed" in message
    assert "temperature, repetition_penalty, no_repeat_ngram_size" in message
    assert kgpt2.samplers.options("beam") == (
        "num_beams", "return_all_beams", "temperature", "repetition_penalty",
        "no_repeat_ngram_size", "valid_utf8", "presence_penalty", "frequency_penalty",
        "logit_bias",
    )


@pytest.mark.parametrize(
    "name, options, fragment",
    [
        ("top_k", dict(k=0), "TopKSampler: k must be an integer >= 1, got 0."),
        ("top_k", dict(k=2.5), "k must be an integer"),
        ("top_k", dict(k=True), "k must be an integer"),
        ("top_p", dict(p=0.0), "p must be a number > 0 and <= 1, got 0.0."),
        ("top_p", dict(p=1.5), "p must be a number > 0 and <= 1"),
        ("top_p", dict(k=0), "k must be an integer >= 1"),
        ("random", dict(min_p=1.5), "min_p must be a number >= 0 and <= 1"),
        ("random", dict(seed=-1), "seed must be an integer >= 0"),
        ("random", dict(seed="7"), "seed must be an integer >= 0, got '7'."),
        ("greedy", dict(temperature=0), "temperature must be a number > 0"),
        ("greedy", dict(repetition_penalty=0.0), "repetition_penalty must be a number > 0"),
        ("greedy", dict(repetition_penalty="high"), "repetition_penalty must be a number"),
        ("greedy", dict(no_repeat_ngram_size=-1), "no_repeat_ngram_size must be an integer >= 0"),
        ("beam", dict(num_beams=0), "BeamSampler: num_beams must be an integer >= 1"),
        ("contrastive", dict(alpha=1.5), "alpha must be a number >= 0 and <= 1"),
    ],
)
def test_bad_option_values_are_rejected(name, options, fragment):
    with pytest.raises(ValueError) as info:
        kgpt2.samplers.get(name, **options)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "name, options",
    [
        ("greedy", dict(temperature=0.7, repetition_penalty=1.2, no_repeat_ngram_size=3)),
        ("random", dict(seed=3, temperature=0.9, min_p=0.05, repetition_penalty=1.1)),
        ("top_k", dict(k=7, seed=1, min_p=0.1, no_repeat_ngram_size=2)),
        ("top_p", dict(p=0.9, k=100, seed=2, min_p=0.02, repetition_penalty=1.3)),
        ("beam", dict(num_beams=3, repetition_penalty=1.2, no_repeat_ngram_size=4)),
        ("contrastive", dict(k=4, alpha=0.4, no_repeat_ngram_size=3)),
    ],
)
def test_serialize_deserialize_round_trip(name, options):
    sampler = kgpt2.samplers.get(name, **options)
    config = json.loads(json.dumps(keras_hub.samplers.serialize(sampler)))
    assert config["registered_name"] == f"kgpt2>{type(sampler).__name__}"
    for restored in (
        keras_hub.samplers.deserialize(config),
        keras_hub.samplers.get(config),
        keras.saving.deserialize_keras_object(config),
    ):
        assert type(restored) is type(sampler)
        assert restored.get_config() == sampler.get_config()
        for key, value in options.items():
            assert restored.get_config()[key] == value


# --- the logits math against numpy references -------------------------------


@pytest.mark.slow
def test_repetition_penalty_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 40)).astype("float32") * 3
    logits[0, :5] = 0.0  # zero logits stay zero either way
    token_ids = rng.integers(0, 40, size=(3, 12)).astype("int32")
    for index in (0, 1, 7, 12):
        for penalty in (0.8, 1.0, 1.7):
            got = np.asarray(keras.ops.convert_to_numpy(
                logits_processing.apply_repetition_penalty(
                    logits, token_ids, index, penalty)))
            want = np.stack([
                repetition_penalty(logits[row], token_ids[row, :index], penalty)
                for row in range(3)
            ])
            np.testing.assert_allclose(got, want, rtol=1e-6)
            if index and penalty > 1:
                assert not np.allclose(got, logits)  # the test can see a change


@pytest.mark.slow
@pytest.mark.parametrize("ngram_size", [1, 2, 3, 4])
def test_banned_ngrams_match_numpy(ngram_size):
    rng = np.random.default_rng(ngram_size)
    # A 3-token vocabulary makes repeated n-grams frequent.
    token_ids = rng.integers(0, 3, size=(4, 16)).astype("int32")
    banned_any = 0
    for index in range(0, 17):
        got = np.asarray(keras.ops.convert_to_numpy(
            logits_processing.banned_ngram_mask(token_ids, index, ngram_size, 5)))
        for row in range(4):
            want = banned_ngram_tokens(token_ids[row, :index], ngram_size)
            assert set(np.flatnonzero(got[row])) == want, (row, index)
            banned_any += len(want)
    assert banned_any > 0


def test_min_p_keeps_tokens_within_a_fraction_of_the_top():
    probabilities = np.array(
        [[0.5, 0.3, 0.15, 0.05], [0.25, 0.25, 0.25, 0.25]], "float32")
    got = np.asarray(keras.ops.convert_to_numpy(
        logits_processing.apply_min_p(probabilities, 0.4)))
    # Thresholds 0.2 and 0.1: the tail goes, kept values are not rescaled.
    np.testing.assert_allclose(got, [[0.5, 0.3, 0, 0], [0.25, 0.25, 0.25, 0.25]])


def _sample_fixed_distribution(sampler, probabilities, batch_size=512, steps=4):
    """Run `sampler`'s own loop on a `next` that always returns `probabilities`."""
    logits = np.log(np.asarray(probabilities, "float32"))
    logits = np.broadcast_to(logits, (batch_size, len(probabilities))).copy()

    def next(prompt, cache, index):
        return keras.ops.convert_to_tensor(logits), None, cache

    prompt = np.zeros((batch_size, 1 + steps), "int32")
    out = sampler(next=next, prompt=prompt, index=1)
    return np.asarray(keras.ops.convert_to_numpy(out))[:, 1:]


@pytest.mark.slow
def test_min_p_sampling_semantics():
    probabilities = [0.4, 0.3, 0.2, 0.1]
    # min_p=0.45: threshold 0.18 keeps tokens 0, 1, 2 and never 3.
    tokens = _sample_fixed_distribution(
        kgpt2.samplers.RandomSampler(min_p=0.45, seed=0), probabilities)
    assert set(tokens.ravel()) == {0, 1, 2}
    # top-p=0.75 on the full distribution keeps 0, 1, 2 (Hugging Face order:
    # top-p, then min-p). Cutting min-p first and renormalizing would drop 2.
    tokens = _sample_fixed_distribution(
        kgpt2.samplers.TopPSampler(p=0.75, min_p=0.45, seed=0), probabilities)
    assert set(tokens.ravel()) == {0, 1, 2}
    tokens = _sample_fixed_distribution(
        kgpt2.samplers.TopPSampler(p=0.75, min_p=0.6, seed=0), probabilities)
    assert set(tokens.ravel()) == {0, 1}
    tokens = _sample_fixed_distribution(
        kgpt2.samplers.TopKSampler(k=3, min_p=1.0, seed=0), probabilities)
    assert set(tokens.ravel()) == {0}


# --- inside lm.generate ------------------------------------------------------


def _keras_hub_twin(name, seed):
    return {
        "greedy": lambda: keras_hub.samplers.GreedySampler(),
        "random": lambda: keras_hub.samplers.RandomSampler(seed=seed),
        "top_k": lambda: keras_hub.samplers.TopKSampler(k=5, seed=seed),
        "top_p": lambda: keras_hub.samplers.TopPSampler(p=0.5, k=50, seed=seed),
        "beam": lambda: keras_hub.samplers.BeamSampler(num_beams=3),
        "contrastive": lambda: keras_hub.samplers.ContrastiveSampler(k=3, alpha=0.5),
    }[name]()


NEUTRAL = {
    "greedy": {},
    "random": dict(min_p=0.0),
    "top_k": dict(k=5, min_p=0.0),
    "top_p": dict(p=0.5, min_p=0.0),
    "beam": dict(num_beams=3),
    "contrastive": dict(k=3, alpha=0.5),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_neutral_options_match_keras_hub_exactly(lm, name):
    seed = 11
    options = dict(NEUTRAL[name], temperature=1.0, repetition_penalty=1.0,
                   no_repeat_ngram_size=0, valid_utf8=False)
    if name in ("random", "top_k", "top_p"):
        options["seed"] = seed
    if name == "top_p":
        # Without k, kgpt2 finds the nucleus without sorting: the same tokens
        # kept with the same odds, not the same draw for a seed (that is
        # test_samplers_nucleus.py); with k it runs KerasHub's code.
        options["k"] = 50
    outputs = []
    for sampler in (kgpt2.samplers.get(name, **options), _keras_hub_twin(name, seed)):
        lm.compile(sampler=sampler)
        outputs.append(lm.generate(PROMPTS, max_length=24, stop_token_ids=None))
    assert outputs[0] == outputs[1]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["random", "top_k", "top_p"])
def test_seeded_samplers_are_reproducible(lm, name):
    options = dict(NEUTRAL[name], repetition_penalty=1.2, no_repeat_ngram_size=2)
    if name == "top_p":
        options["p"] = 0.9
    runs = []
    for seed in (5, 5, 6):
        lm.compile(sampler=kgpt2.samplers.get(name, seed=seed, **options))
        runs.append(lm.generate(PROMPTS, max_length=24, stop_token_ids=None))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.slow
@pytest.mark.parametrize("penalty", [1.0, 1.5])
def test_top_k_never_leaves_the_top_k(lm, penalty):
    k = 3
    lm.compile(sampler=kgpt2.samplers.get("top_k", k=k, seed=0,
                                          repetition_penalty=penalty))
    ids, prompt_lengths = generate_ids(lm, PROMPTS * 4, max_length=32)
    logits = next_token_logits(lm, ids)
    ranks = []
    for row, start in enumerate(prompt_lengths):
        for t in range(start, ids.shape[1]):
            scores = repetition_penalty(logits[row, t - 1], ids[row, :t], penalty)
            kth_best = np.sort(scores)[-k]
            assert scores[ids[row, t]] >= kth_best - 1e-3, (row, t)
            ranks.append(int((scores > scores[ids[row, t]]).sum()))
    assert set(ranks) == {0, 1, 2}  # it does sample, not only the argmax


@pytest.mark.slow
def test_greedy_with_repetition_options_matches_numpy_decoding(lm):
    lm.compile(sampler=kgpt2.samplers.get(
        "greedy", repetition_penalty=1.5, no_repeat_ngram_size=2))
    ids, prompt_lengths = generate_ids(lm, PROMPTS, max_length=40)
    assert_each_token_is_argmax(lm, ids, prompt_lengths, penalty=1.5, ngram_size=2)
    lm.compile(sampler="greedy")
    plain_ids, _ = generate_ids(lm, PROMPTS, max_length=40)
    assert not np.array_equal(ids, plain_ids)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_no_repeat_ngram_holds_in_every_sampler_loop(lm, name):
    options = dict(NEUTRAL[name], no_repeat_ngram_size=2, repetition_penalty=1.1)
    if name in ("random", "top_k", "top_p"):
        options.update(seed=0)
    lm.compile(sampler=kgpt2.samplers.get(name, **options))
    ids, prompt_lengths = generate_ids(lm, PROMPTS, max_length=40)
    for row, start in enumerate(prompt_lengths):
        assert repeated_ngrams(ids[row], start, 2) == [], (name, row)
