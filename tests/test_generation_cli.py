"""`kgpt2 generate` on a preset folder written by `kgpt2.save`."""

import logging

import pytest

import kgpt2
from kgpt2.cli import main
from kgpt2.generation import SAMPLE_DELIMITER


@pytest.fixture(scope="module")
def preset_folder(tmp_path_factory):
    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32, seed=5)
    return str(kgpt2.save(lm, tmp_path_factory.mktemp("cli") / "preset"))


def samples(out):
    """The samples `kgpt2 generate` printed (stdout holds nothing else)."""
    *texts, rest = out.split(f"{SAMPLE_DELIMITER}\n")
    assert all(text.endswith("\n") for text in texts) and rest == ""
    return [text[:-1] for text in texts], rest


@pytest.mark.slow
def test_generate_greedy_to_file(preset_folder, tmp_path, capsys, caplog):
    output = tmp_path / "samples.txt"
    argv = ["generate", "--preset", preset_folder, "--prompt", "Hello there",
            "--sampler", "greedy", "--max-length", "48", "--nsamples", "3",
            "--batch-size", "2", "--output", str(output)]
    logger = logging.getLogger("kgpt2")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="kgpt2"):
            assert main(argv) == 0
    finally:
        logger.removeHandler(caplog.handler)
    out = capsys.readouterr().out
    texts, _ = samples(out)
    speed = [r.getMessage() for r in caplog.records if "tokens/s" in r.getMessage()][-1]
    # --max-length above the saved preprocessor's 32 works: the CLI loads
    # the preset with room for it.
    expected = kgpt2.generate(kgpt2.load(preset_folder, sequence_length=48), "Hello there",
                              sampler="greedy", max_length=48)[0]
    assert texts == [expected] * 3
    assert "tokens/s" in speed and float(speed.split(" tokens/s")[0].split()[-1]) > 0
    assert output.read_text("utf-8") == out


@pytest.mark.slow
def test_generate_with_its_defaults_prints_one_sample(preset_folder, capsys):
    # No prompt, top_k, 128 tokens: longer than the saved preset's 32.
    assert main(["generate", "--preset", preset_folder]) == 0
    texts, _ = samples(capsys.readouterr().out)
    assert len(texts) == 1


@pytest.mark.slow
def test_sampler_flags_seed_prefix_and_truncate(preset_folder, capsys):
    argv = ["generate", "--preset", preset_folder, "--prompt", "Hello there",
            "--sampler", "top_k", "--top-k", "20", "--temperature", "0.8",
            "--repetition-penalty", "1.3", "--no-repeat-ngram", "2", "--seed", "4",
            "--max-length", "24", "--nsamples", "2", "--batch-size", "2",
            "--no-include-prefix"]
    assert main(argv) == 0
    first, _ = samples(capsys.readouterr().out)
    assert main(argv) == 0
    again, _ = samples(capsys.readouterr().out)
    assert first == again and len(first) == 2
    assert not any(text.startswith("Hello there") for text in first)
    word = first[0].split()[1]
    assert main(argv + ["--truncate", word]) == 0
    cut, _ = samples(capsys.readouterr().out)
    assert cut[0] == first[0][: first[0].find(word)]


@pytest.mark.slow
def test_min_new_tokens_flag(preset_folder, capsys):
    # Unconditional greedy text of the random model ends at once (its first
    # choice is <|endoftext|>), unless --min-new-tokens holds the end back.
    argv = ["generate", "--preset", preset_folder, "--sampler", "greedy",
            "--max-length", "16"]
    assert main(argv) == 0
    assert samples(capsys.readouterr().out)[0] == [""]
    assert main(argv + ["--min-new-tokens", "3"]) == 0
    texts, _ = samples(capsys.readouterr().out)
    tokenizer = kgpt2.load(preset_folder).preprocessor.tokenizer
    assert len(tokenizer(texts[0])) >= 3


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sampler", "greedy", "--top-p", "0.5"], "--top-p does not apply to --sampler greedy"),
        (["--sampler", "nucleus"], "Unknown sampler 'nucleus'"),
        (["--max-length", "2000"], "1024 positions"),
        (["--nsamples", "0"], "--nsamples must be an integer >= 1"),
        (["--min-new-tokens", "-1"], "--min-new-tokens must be an integer >= 0, got -1"),
    ],
)
def test_bad_flags_are_clear_errors(preset_folder, capsys, extra, message):
    assert main(["generate", "--preset", preset_folder, *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kgpt2 generate: error:") and message in err
    assert err.count("\n") == 1, err


def test_help_lists_generate(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "generate" in capsys.readouterr().out


@pytest.mark.slow
def test_openai_penalties_and_the_bos_convention_reach_generate(preset_folder, capsys):
    argv = ["generate", "--preset", preset_folder, "--prompt", "Hello there",
            "--sampler", "greedy", "--max-length", "20", "--no-include-prefix",
            "--frequency-penalty", "1.5", "--presence-penalty", "0.5", "--no-prepend-bos"]
    assert main(argv) == 0
    texts, _ = samples(capsys.readouterr().out)
    lm = kgpt2.load(preset_folder, sequence_length=20)
    sampler = kgpt2.samplers.get("greedy", frequency_penalty=1.5, presence_penalty=0.5)
    expected = kgpt2.generate(lm, "Hello there", sampler=sampler, max_length=20,
                              include_prefix=False, prepend_bos=False)
    with_bos = kgpt2.generate(lm, "Hello there", sampler=sampler, max_length=20,
                              include_prefix=False)
    assert texts == expected and expected != with_bos
