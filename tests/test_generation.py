"""The fast generation path: same tokens as KerasHub, fewer compiles."""

# Keep compiled programs of the test session out of ~/.cache (set before any
# test generates; conftest-free so the module stays self-contained).

import keras_hub
import numpy as np
import pytest

import kgpt2
from kgpt2.generation import generate_token_ids
from kgpt2.generation.buckets import bucket_length
from kgpt2.generation.layout import layout_prompts
from kgpt2.generation.sampler_lookup import reseed

FOX = [464, 2068, 7586, 21831]  # "The quick brown fox"


def keras_hub_generate(lm, sampler, token_ids, lengths, max_length, stop_token_ids=None):
    """Token ids from KerasHub's own compiled `generate_step`."""
    lm.compile(sampler=sampler)
    batch = len(lengths)
    ids = np.zeros((batch, max_length), "int32")
    mask = np.zeros((batch, max_length), bool)
    for row, length in enumerate(lengths):
        ids[row, :length] = token_ids[row][:length]
        mask[row, :length] = True
    function = lm.make_generate_function()
    output = function({"token_ids": ids, "padding_mask": mask}, stop_token_ids=stop_token_ids)
    return np.asarray(output["token_ids"]), np.asarray(output["padding_mask"])


def test_buckets_grow_by_about_1_4x():
    assert [bucket_length(n) for n in (1, 8, 9, 100, 128, 129, 132, 1000)] == [
        8, 8, 12, 128, 128, 192, 192, 1024,
    ]


def test_layout_right_aligns_and_fills_with_the_first_token():
    layout = layout_prompts(np.array([[5, 6, 7], [9, 8, 0]]), np.array([3, 2]), max_length=6)
    assert layout.bucket == 8 and layout.offset == 2 and layout.index == 4
    assert layout.prompt.tolist() == [[5, 5, 5, 6, 7, 0, 0, 0], [9, 9, 9, 8, 0, 0, 0, 0]]
    assert layout.mask.tolist() == [[True] * 5 + [False] * 3, [True] * 4 + [False] * 4]
    assert layout.prefill_length == 8
    assert layout.generated(layout.prompt).tolist() == [[5, 6, 7, 0, 0, 0], [9, 8, 0, 0, 0, 0]]


@pytest.mark.slow
@pytest.mark.parametrize(
    "lengths, max_length",
    [
        ([4, 4], 40),  # uniform batch
        ([4, 2], 40),  # ragged: the short row generates while the long one is still prompt
        ([4, 3], 5),  # prefill window longer than max_length: it slides over unused slots
        ([1, 1], 13),  # one-token prompts (unconditional generation)
        ([4, 1], 64),  # the whole preprocessor length, offset 0
    ],
)
def test_greedy_matches_keras_hub_token_for_token(tiny_lm, lengths, max_length):
    token_ids = np.array([FOX, FOX])
    expected, _ = keras_hub_generate(
        tiny_lm, keras_hub.samplers.GreedySampler(), token_ids, lengths, max_length
    )
    ours = generate_token_ids(
        tiny_lm, token_ids, max_length, sampler=keras_hub.samplers.GreedySampler(),
        prompt_lengths=lengths,
    )
    assert ours.shape == (2, max_length)
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.slow
@pytest.mark.parametrize(
    "make_sampler",
    [
        lambda: keras_hub.samplers.TopKSampler(k=5, seed=3),
        lambda: keras_hub.samplers.TopPSampler(p=0.9, seed=3),
        lambda: keras_hub.samplers.RandomSampler(seed=1),
        lambda: keras_hub.samplers.BeamSampler(num_beams=3),
        lambda: keras_hub.samplers.ContrastiveSampler(k=3),
        lambda: kgpt2.samplers.get("top_k", k=5, seed=3, repetition_penalty=1.5),
    ],
    ids=["top_k", "top_p", "random", "beam", "contrastive", "kgpt2_top_k_penalty"],
)
def test_every_sampler_matches_keras_hub(tiny_lm, make_sampler):
    token_ids, lengths = np.array([FOX, FOX]), [4, 2]
    expected, _ = keras_hub_generate(tiny_lm, make_sampler(), token_ids, lengths, 30)
    ours = generate_token_ids(tiny_lm, token_ids, 30, sampler=make_sampler(), prompt_lengths=lengths)
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.slow
def test_seeded_sampler_advances_and_reseeds(tiny_lm):
    sampler = keras_hub.samplers.TopKSampler(k=50, seed=7)
    prompt = np.array([FOX])
    first = generate_token_ids(tiny_lm, prompt, 24, sampler=sampler)
    second = generate_token_ids(tiny_lm, prompt, 24, sampler=sampler)
    assert not np.array_equal(first, second)  # the random stream moved on
    reseed(sampler, 7)
    np.testing.assert_array_equal(generate_token_ids(tiny_lm, prompt, 24, sampler=sampler), first)


@pytest.mark.slow
def test_no_repeat_ngram_holds_on_the_fast_path(tiny_lm):
    sampler = kgpt2.samplers.get("greedy", no_repeat_ngram_size=3)
    row = generate_token_ids(tiny_lm, np.array([FOX]), 60, sampler=sampler)[0].tolist()
    trigrams = [tuple(row[i : i + 3]) for i in range(len(row) - 2)]
    assert len(trigrams) == len(set(trigrams))


@pytest.mark.slow
def test_stop_tokens_match_keras_hub_and_fill_after_the_stop(tiny_lm):
    token_ids = np.array([FOX, FOX[:2] + [0, 0]])
    lengths = [4, 2]
    free = generate_token_ids(tiny_lm, token_ids, 30, sampler="greedy", prompt_lengths=lengths)
    # Stop on a token that row 0 generates a few steps in.
    stop = int(free[0, 7])
    ours = generate_token_ids(
        tiny_lm, token_ids, 30, sampler="greedy", stop_token_ids=[stop], prompt_lengths=lengths
    )
    expected, mask = keras_hub_generate(
        tiny_lm, keras_hub.samplers.GreedySampler(), token_ids, lengths, 30, stop_token_ids=(stop,)
    )
    first_stop = 4 + list(free[0, 4:]).index(stop)
    np.testing.assert_array_equal(ours[0, : first_stop + 1], free[0, : first_stop + 1])
    assert (ours[0, first_stop:] == stop).all()
    # Where KerasHub's mask says the text is, the tokens are the same.
    np.testing.assert_array_equal(np.where(mask, ours, -1), np.where(mask, expected, -1))


@pytest.mark.slow
def test_bucketing_avoids_recompiles(fresh_tiny_lm):
    import jax

    traces = []

    def count(event, duration, fun_name=None, **kwargs):
        if event == "/jax/core/compile/jaxpr_trace_duration" and fun_name == "kgpt2_generate":
            traces.append(fun_name)

    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        sampler = keras_hub.samplers.GreedySampler()

        def run(prompt_length, max_length):
            ids = np.array([FOX[:prompt_length]] * 2)
            return generate_token_ids(fresh_tiny_lm, ids, max_length, sampler=sampler)

        run(4, 20)
        assert len(traces) == 1
        # Other prompt lengths (prefill bucket 8) and max_length values
        # (bucket 24) reuse the program.
        for prompt_length, max_length in [(2, 20), (3, 17), (4, 24), (1, 22), (4, 19)]:
            assert run(prompt_length, max_length).shape == (2, max_length)
        assert len(traces) == 1
        run(4, 40)  # bucket 48: one new program
        run(2, 33)
        assert len(traces) == 2
    finally:
        jax.monitoring.unregister_event_duration_listener(count)


@pytest.mark.slow
def test_a_new_process_reuses_compiled_programs_from_disk(fresh_tiny_lm):
    """What the persistent cache saves a second process, checked in-process:
    after dropping JAX's in-memory caches, compiling again hits the disk."""
    import jax

    from kgpt2.compilation_cache import enable_compilation_cache

    folder = enable_compilation_cache()
    assert folder == jax.config.jax_compilation_cache_dir
    hits = []

    def count(event, **kwargs):
        if event == "/jax/compilation_cache/cache_hits":
            hits.append(event)

    previous = jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.monitoring.register_event_listener(count)
    try:
        sampler = keras_hub.samplers.GreedySampler()
        first = generate_token_ids(fresh_tiny_lm, np.array([FOX]), 12, sampler=sampler)
        jax.clear_caches()
        again = generate_token_ids(fresh_tiny_lm, np.array([FOX]), 12, sampler=sampler)
        assert hits, f"no persistent cache hit (cache folder {folder})"
        np.testing.assert_array_equal(first, again)
    finally:
        jax.monitoring.unregister_event_listener(count)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", previous)


def test_compilation_cache_can_be_turned_off_or_moved(monkeypatch, tmp_path):
    import jax

    from kgpt2.compilation_cache import enable_compilation_cache

    current = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        monkeypatch.setenv("KGPT2_COMPILATION_CACHE", "off")
        assert enable_compilation_cache() is None
        monkeypatch.setenv("KGPT2_COMPILATION_CACHE", str(tmp_path / "cache"))
        assert enable_compilation_cache() == str(tmp_path / "cache")
        assert (tmp_path / "cache").is_dir()
        # A folder the user gave JAX wins.
        monkeypatch.setenv("KGPT2_COMPILATION_CACHE", str(tmp_path / "other"))
        assert enable_compilation_cache() == str(tmp_path / "cache")
    finally:
        jax.config.update("jax_compilation_cache_dir", current)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(token_ids=[FOX], max_length=1025), "1024 positions"),
        (dict(token_ids=[FOX], max_length=3), "shorter than the longest prompt"),
        (dict(token_ids=[FOX], max_length=8.0), "max_length must be an integer"),
        (dict(token_ids=FOX, max_length=8), "(batch, prompt_length)"),
        (dict(token_ids=[[0.5, 1.0]], max_length=8), "must be integers"),
        (dict(token_ids=[FOX], max_length=8, prompt_lengths=[5]), "between 1 and 4"),
        (dict(token_ids=[FOX], max_length=8, sampler="nucleus"), "Unknown sampler 'nucleus'"),
    ],
)
def test_bad_arguments_are_clear_errors(tiny_lm, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        generate_token_ids(tiny_lm, **kwargs)
