"""`kgpt2.generate`: gpt-2-simple's options on the fast path."""

import logging

import pytest

import kgpt2
from kgpt2.generation import SAMPLE_DELIMITER
from kgpt2.generation.text import _progress

PROMPT = "The quick brown fox"  # 4 tokens, 5 with the start token


@pytest.fixture
def kgpt2_log(caplog):
    """pytest's caplog, attached to the "kgpt2" logger itself at INFO level
    (the CLI may stop that logger from propagating to the root)."""
    logger = logging.getLogger("kgpt2")
    level = logger.level
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(level)


def speed_logged(caplog):
    """`(new tokens, seconds, tokens/s)` of the last `kgpt2.generate` call."""
    records = [r for r in caplog.records if r.name == "kgpt2" and "tokens/s" in r.getMessage()]
    return records[-1].args


def new_tokens_logged(caplog):
    return speed_logged(caplog)[0]


@pytest.mark.slow
def test_same_text_as_lm_generate(tiny_lm):
    tiny_lm.compile(sampler="greedy")
    for prompt in [PROMPT, ""]:
        expected = tiny_lm.generate(prompt, max_length=24)
        assert kgpt2.generate(tiny_lm, prompt or None, sampler="greedy", max_length=24) == [
            expected
        ]


@pytest.mark.slow
def test_unconditional_samples_start_from_endoftext(tiny_lm, kgpt2_log):
    texts = kgpt2.generate(tiny_lm, None, sampler="greedy", max_length=12, stop_token_ids=None)
    tiny_lm.compile(sampler="greedy")
    assert type(texts) is list
    # KerasHub's postprocessing drops every <|endoftext|>, wherever it is;
    # with stop_token_ids=None kgpt2 keeps what the model wrote (the random
    # model's greedy pick repeats the token it reads, here the start token).
    keras_hub_text = tiny_lm.generate("", max_length=12, stop_token_ids=None)
    assert [texts[0].replace("<|endoftext|>", "")] == [keras_hub_text]
    # 12 slots minus the start token.
    assert new_tokens_logged(kgpt2_log) == 11


@pytest.mark.slow
def test_nsamples_in_batches_seeded_and_counted(tiny_lm, kgpt2_log):
    kwargs = dict(sampler="top_k", max_length=16, nsamples=5, batch_size=2, stop_token_ids=None)
    texts = kgpt2.generate(tiny_lm, PROMPT, seed=3, **kwargs)
    new_tokens, seconds, rate = speed_logged(kgpt2_log)
    assert new_tokens == 5 * (16 - 5)
    assert rate == pytest.approx(new_tokens / seconds)
    assert len(texts) == 5 and all(text.startswith(PROMPT) for text in texts)
    assert len(set(texts)) > 1  # batches and rows differ
    assert kgpt2.generate(tiny_lm, PROMPT, seed=3, **kwargs) == texts
    assert kgpt2.generate(tiny_lm, PROMPT, seed=4, **kwargs) != texts


@pytest.mark.slow
def test_several_prompts_keep_their_order(tiny_lm):
    prompts = ["Hello", "The quick brown fox jumps over"]
    texts = kgpt2.generate(tiny_lm, prompts, sampler="greedy", max_length=20, nsamples=2,
                           batch_size=3)
    order = [prompts[0], prompts[0], prompts[1], prompts[1]]
    assert all(text.startswith(prompt) for text, prompt in zip(texts, order))
    single = [kgpt2.generate(tiny_lm, p, sampler="greedy", max_length=20)[0] for p in prompts]
    assert texts == [single[0], single[0], single[1], single[1]]


@pytest.mark.slow
def test_include_prefix_and_truncate(tiny_lm):
    full = kgpt2.generate(tiny_lm, PROMPT, sampler="greedy", max_length=30, stop_token_ids=None)[0]
    continuation = full[len(PROMPT):]
    assert kgpt2.generate(
        tiny_lm, PROMPT, sampler="greedy", max_length=30, stop_token_ids=None,
        include_prefix=False,
    ) == [continuation]
    # Cut at a word from the middle of the generated text.
    word = continuation.split()[len(continuation.split()) // 2]
    cut = kgpt2.generate(
        tiny_lm, PROMPT, sampler="greedy", max_length=30, stop_token_ids=None, truncate=word
    )[0]
    assert cut == PROMPT + continuation[: continuation.find(word)]
    # A string that never occurs leaves the text whole.
    assert kgpt2.generate(
        tiny_lm, PROMPT, sampler="greedy", max_length=30, stop_token_ids=None,
        truncate="\x00never\x00",
    ) == [full]


@pytest.mark.slow
def test_destination_path(tiny_lm, tmp_path):
    path = tmp_path / "out" / "samples.txt"
    texts = kgpt2.generate(tiny_lm, PROMPT, sampler="top_k", seed=1, max_length=12,
                           nsamples=3, batch_size=3, destination_path=path)
    written = path.read_text("utf-8")
    assert written == "".join(f"{text}\n{SAMPLE_DELIMITER}\n" for text in texts)
    assert written.count(SAMPLE_DELIMITER) == 3
    assert not [p for p in path.parent.iterdir() if p.name != "samples.txt"]  # no leftovers


def test_progress_bar_only_for_several_batches():
    assert _progress(1) is None
    assert _progress(3) is not None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompt_or_prompts=[]), "empty list"),
        (dict(prompt_or_prompts=["ok", 3]), "prompt 1 is a int"),
        (dict(nsamples=0), "nsamples must be an integer >= 1"),
        (dict(batch_size=0), "batch_size must be an integer >= 1"),
        (dict(batch_size=2.5), "batch_size must be an integer >= 1"),
        (dict(max_length=65), "preprocessor's sequence_length=64"),
        (dict(max_length=2000), "1024 positions"),
        (dict(prompt_or_prompts="one two three four five six seven", max_length=6),
         "leaves no room"),
        (dict(stop_token_ids="end"), "stop_token_ids must be 'auto'"),
        (dict(sampler="nucleus"), "Unknown sampler 'nucleus'"),
        (dict(sampler=42), "sampler must be None, a sampler name"),
        (dict(seed="x", sampler="top_k"), "seed must be an integer"),
    ],
)
def test_bad_arguments_are_clear_errors(tiny_lm, kwargs, message):
    kwargs = {"prompt_or_prompts": PROMPT, "max_length": 16, **kwargs}
    with pytest.raises(ValueError, match=message):
        kgpt2.generate(tiny_lm, **kwargs)
