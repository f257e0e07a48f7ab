"""The continuous-batching engine, the incremental decoder and `stream_text`."""

import time

import pytest

import kgpt2
from kgpt2.generation import stream_text
from kgpt2.generation.batching_engine import BatchingEngine
from kgpt2.generation.batching_engine import QueueFullError
from kgpt2.generation.detokenize import IncrementalDecoder
from kgpt2.generation.prompts import tokenize_prompts
from kgpt2.generation.row_sampling import SamplingOptions
from kgpt2.generation.stop_text import StopText

PROMPTS = ["The quick brown fox", "Hello", "你好, this prompt is a little longer than the rest"]
GREEDY = SamplingOptions(temperature=0.0)
TIMEOUT = 120


@pytest.fixture(scope="module")
def engine(tiny_lm):
    engine = BatchingEngine(tiny_lm, max_batch_size=4, max_queue=2)
    yield engine
    engine.close()


def _ids(lm, prompt):
    return tokenize_prompts(lm, [prompt], 64)[0]


@pytest.mark.slow
def test_greedy_rows_decoded_together_equal_generate(tiny_lm, engine):
    before = engine.stats()["rows_per_step"].get(3, 0)
    jobs = [engine.submit(_ids(tiny_lm, p), 40 - len(_ids(tiny_lm, p)), GREEDY,
                          stop_token_ids=()) for p in PROMPTS]
    results = [job.result(timeout=TIMEOUT)[0] for job in jobs]
    expected = [
        kgpt2.generate(tiny_lm, p, sampler="greedy", max_length=40, include_prefix=False,
                       stop_token_ids=None)[0]
        for p in PROMPTS
    ]
    assert [r["text"] for r in results] == expected
    assert all(r["finish_reason"] == "length" for r in results)
    # The three requests overlapped: some steps decoded all three rows.
    assert engine.stats()["rows_per_step"].get(3, 0) > before


@pytest.mark.slow
def test_seeded_rows_repeat_whatever_shares_their_batch(tiny_lm, engine):
    options = SamplingOptions.from_sampler("top_k", k=20, seed=7)
    alone = engine.submit(_ids(tiny_lm, "Hi"), 16, options, n=2).result(timeout=TIMEOUT)
    crowd = engine.submit(_ids(tiny_lm, "Other"), 16, SamplingOptions(seed=1), n=2)
    again = engine.submit(_ids(tiny_lm, "Hi"), 16, options, n=2).result(timeout=TIMEOUT)
    crowd.result(timeout=TIMEOUT)
    assert [c["token_ids"] for c in again] == [c["token_ids"] for c in alone]
    assert alone[0]["token_ids"] != alone[1]["token_ids"]  # each choice its own stream


@pytest.mark.slow
def test_mixed_settings_share_a_step_and_respect_their_rules(tiny_lm, engine):
    banned = SamplingOptions(temperature=0.0, no_repeat_ngram_size=1)
    jobs = [
        engine.submit(_ids(tiny_lm, "ab"), 24, banned),
        engine.submit(_ids(tiny_lm, "ab"), 24, SamplingOptions(top_p=0.5, seed=2)),
        engine.submit(_ids(tiny_lm, "ab"), 24, SamplingOptions.from_sampler(
            "random", repetition_penalty=1.5, seed=3)),
    ]
    results = [job.result(timeout=TIMEOUT)[0] for job in jobs]
    # no_repeat_ngram_size=1 bans every token already present, prompt included.
    prompt = _ids(tiny_lm, "ab")
    tokens = results[0]["token_ids"]
    assert len(set(tokens)) == len(tokens) and not set(tokens) & set(prompt)


@pytest.mark.slow
def test_full_queue_refuses_and_cancel_frees_rows(tiny_lm, engine):
    long = [engine.submit([50256], 60, SamplingOptions(seed=i), n=2) for i in range(2)]
    _wait_for(lambda: engine.stats()["busy_rows"] == 4)
    waiting = [engine.submit([50256], 60, SamplingOptions(seed=9)) for _ in range(2)]
    with pytest.raises(QueueFullError, match="max_queue=2"):
        engine.submit([50256], 60, SamplingOptions(seed=9))
    for job in long + waiting:
        job.cancel()
    for job in long + waiting:
        events = list(job.events(timeout=TIMEOUT))
        assert events[-1].finish_reason in ("error", "length")
    assert engine.stats()["busy_rows"] == 0


@pytest.mark.slow
def test_steps_run_only_the_rows_the_load_needs_and_moved_rows_keep_their_text(tiny_lm):
    engine = BatchingEngine(tiny_lm, max_batch_size=4)
    try:
        engine.submit(_ids(tiny_lm, "Hi"), 8, GREEDY).result(timeout=TIMEOUT)
        assert set(engine.stats()["step_rows"]) == {1}  # one request, one row
        # Three at once: the first two finish early, and the last row moves
        # into a freed slot, then decodes alone once the cache shrinks.
        lengths = [10, 16, 40]
        jobs = [engine.submit(_ids(tiny_lm, p), n, GREEDY, stop_token_ids=())
                for p, n in zip(PROMPTS, lengths)]
        texts = [job.result(timeout=TIMEOUT)[0]["text"] for job in jobs]
        stats = engine.stats()
    finally:
        engine.close()
    expected = [
        kgpt2.generate(tiny_lm, p, sampler="greedy", include_prefix=False, stop_token_ids=None,
                       max_length=len(_ids(tiny_lm, p)) + n)[0]
        for p, n in zip(PROMPTS, lengths)
    ]
    assert texts == expected
    assert stats["step_rows"].get(4, 0) >= 4  # three busy rows ran as four
    # ... and the last one, alone, went back to one row after SHRINK_AFTER_STEPS.
    assert stats["step_rows"][1] > 8


@pytest.mark.slow  # about 6 s: compiles every step shape of a 2-row engine
def test_warm_up_compiles_every_step_that_short_requests_use(tiny_lm):
    engine = BatchingEngine(tiny_lm, max_batch_size=2, context_length=64)
    try:
        engine.warm_up()
        compiled = engine.stats()["step_programs"]
        engine.submit(_ids(tiny_lm, "Hi"), 8, GREEDY).result(timeout=TIMEOUT)
        both = [engine.submit(_ids(tiny_lm, "Hi"), 30, options)
                for options in (GREEDY, SamplingOptions(seed=1))]
        for job in both:
            job.result(timeout=TIMEOUT)
        stats = engine.stats()
    finally:
        engine.close()
    assert stats["step_rows"].get(2, 0) > 0
    assert stats["step_programs"] == compiled


def _wait_for(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_bad_requests_fail_early(engine):
    with pytest.raises(kgpt2.Error, match="context"):
        engine.submit([50256] * 10, 60, GREEDY)
    with pytest.raises(kgpt2.Error, match="n must be"):
        engine.submit([50256], 4, GREEDY, n=5)
    with pytest.raises(kgpt2.Error, match="top_p"):
        SamplingOptions(top_p=0.0)
    with pytest.raises(kgpt2.Error, match="cannot share"):
        SamplingOptions.from_sampler("beam")


def test_incremental_decoder_never_shows_a_split_character(tiny_lm):
    tokenizer = tiny_lm.preprocessor.tokenizer
    text = "你好, 世界 😀 naïve"
    ids = [int(i) for i in tokenizer(text)]
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push([token]) for token in ids] + [decoder.flush()]
    assert "".join(pieces) == text
    assert not any("\ufffd" in piece for piece in pieces)
    assert "" in pieces  # some character really was split across tokens
    cut = IncrementalDecoder(tokenizer)
    assert cut.push(ids[:1]) + cut.flush() == ""  # an unfinished character is dropped


def test_stop_text_holds_back_a_possible_stop():
    stops = StopText(["END", "\n\n"])
    assert stops.feed("abc E") == ("abc ", False)
    assert stops.feed("N") == ("", False)
    assert stops.feed("D more") == ("", True)
    other = StopText(["END"])
    assert other.feed("EN") == ("", False)
    assert other.feed("x") == ("ENx", False)
    assert other.flush() == ""


@pytest.mark.slow
def test_stream_text_pieces_join_to_generate(tiny_lm):
    stream = stream_text(tiny_lm, "The quick brown fox", sampler="greedy", max_length=30)
    pieces = list(stream)
    expected = kgpt2.generate(tiny_lm, "The quick brown fox", sampler="greedy",
                              max_length=30, include_prefix=False)[0]
    assert "".join(pieces) == expected
    assert len(pieces) > 1 and stream.finish_reason in ("stop", "length")
    assert stream.new_tokens >= 1 and stream.tokens_per_second > 0


@pytest.mark.slow
def test_stream_text_closed_early_cancels(tiny_lm):
    stream = stream_text(tiny_lm, "Hi", sampler="top_k", seed=0, max_length=60,
                         stop_token_ids=None)
    next(stream)
    stream.close()
    assert stream.new_tokens < 58
    with pytest.raises(kgpt2.Error, match="cannot share"):
        stream_text(tiny_lm, "Hi", sampler="contrastive")
