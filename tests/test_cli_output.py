"""What the `kgpt2` command prints: kgpt2's lines only, clear errors, the demo's result."""

import os
import re
import subprocess
import sys

import pytest

from kgpt2.cli import main
from kgpt2.demo import cjk_share
from kgpt2.demo import is_ideograph

# TensorFlow/absl/XLA lines seen on stderr before the CLI hid them.
NOISE = re.compile(
    r"^(WARNING: All log messages before absl|[IWEF]\d{4} \d\d:\d\d:\d\d)"
    r"|cuInit|cudart_stub|oneDNN|absl::|xla_bridge|TF_ENABLE_ONEDNN_OPTS|tensorflow/core",
    re.MULTILINE,
)


def kgpt2_command(*arguments, cwd=None, unset=()):
    unset = ("TF_CPP_MIN_LOG_LEVEL", *unset)
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "-m", "kgpt2", *arguments], capture_output=True, text=True,
        timeout=600, cwd=cwd, env=environment,
    )


def test_noise_pattern_matches_what_tensorflow_printed():
    seen = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "E0000 00:00:1796039096.473842    7314 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n"
        "I0000 00:00:1796039073.332417    7314 cudart_stub.cc:31] Could not find cuda drivers\n"
    )
    assert len(NOISE.findall(seen)) >= 3
    assert not NOISE.search("step 10/40  loss 9.4675\nSaved step 40 to ck/run1/ckpt-00000040\n")


def test_presets_prints_no_library_lines():
    result = kgpt2_command("presets")
    assert result.returncode == 0, result.stderr
    assert "gpt2_tiny_random" in result.stdout
    assert not NOISE.search(result.stdout + result.stderr), result.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert re.match(r"kgpt2 \S+", capsys.readouterr().out)


def test_bad_data_fails_before_any_model_is_loaded(tmp_path, capsys):
    # The preset does not exist either: reporting the data means it came first.
    missing_preset = str(tmp_path / "no_such_preset")
    for data, message in [
        ("poems.json", "has no scheme"),
        ("ftp:somewhere", "Unknown data spec scheme 'ftp'"),
        (f"poetry:{tmp_path}/no/such.json", "does not exist"),
        ("jsonl:x.jsonl", "needs a field"),
    ]:
        status = main(["finetune", "--preset", missing_preset, "--data", data, "--steps", "1",
                       "--checkpoint-dir", str(tmp_path / "checkpoint")])
        error = capsys.readouterr().err
        assert status == 1
        assert error.startswith("kgpt2 finetune: error: Data spec") or message in error, error
        assert message in error and "no_such_preset" not in error, error
    assert not (tmp_path / "checkpoint").exists()


def test_sampler_flag_errors_name_the_flag(capsys):
    assert main(["generate", "--preset", "gpt2_tiny_random", "--sampler", "greedy",
                 "--top-p", "0.5"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("kgpt2 generate: error: --top-p does not apply to --sampler greedy")
    assert error.count("\n") == 1


def test_an_unexpected_error_shows_a_traceback_and_asks_for_a_report(capsys, monkeypatch):
    from kgpt2.cli import presets

    def broken(args):
        raise RuntimeError("something kgpt2 did not expect")

    monkeypatch.setattr(presets, "run", broken)
    assert main(["presets"]) == 1  # the parser picks up the handler when built
    error = capsys.readouterr().err
    assert "Traceback" in error and "RuntimeError: something kgpt2 did not expect" in error
    assert "Please report it" in error


@pytest.mark.slow
def test_finetune_prints_no_library_lines(tmp_path):
    from kgpt2.data import sample_poems_path
    from kgpt2.keras_backend import has_accelerator

    # No KERAS_BACKEND: the command chooses, says so, and trains on it.
    result = kgpt2_command(
        "finetune", "--preset", "gpt2_tiny_random", "--data", f"poetry:{sample_poems_path()}",
        "--steps", "2", "--sequence-length", "32", "--batch-size", "2",
        "--checkpoint-dir", str(tmp_path), unset=("KERAS_BACKEND",),
    )
    assert result.returncode == 0, result.stderr
    chosen = "jax" if has_accelerator() else "tensorflow"
    assert f"Keras backend: {chosen} (" in result.stderr, result.stderr
    assert f"learning rate 0.002, float32, Keras backend {chosen}" in result.stderr, result.stderr
    assert "is at step 2" in result.stderr
    # CompileProgress: the first step's compile is announced, then timed.
    assert "Compiling the training step..." in result.stderr
    assert re.search(r"Compiled the training step in \d+ s", result.stderr), result.stderr
    assert not NOISE.search(result.stdout + result.stderr), result.stdout + result.stderr


@pytest.mark.slow
def test_demo_output_is_clean_and_takes_the_poems_form(tmp_path):
    # The one demo run of the suite: it also checks the Python API's result.
    from kgpt2.atomic import write_manifest
    from kgpt2.demo import prepare_run_dir

    (prepare_run_dir(tmp_path / "demo") / "old").write_text("from an earlier demo")
    write_manifest(tmp_path / "demo")
    result = kgpt2_command("demo", "--run-dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "demo" / "old").exists()  # an earlier demo run is replaced
    assert (tmp_path / "demo" / "run" / "LATEST").is_file()
    assert re.search(r"Generation speed: \d+ tokens/s", result.stdout), result.stdout
    output = result.stdout + result.stderr
    assert not NOISE.search(output), output
    match = re.search(r"perplexity: ([\d,.]+) before fine-tuning, ([\d,.]+) after", result.stdout)
    before, after = (float(group.replace(",", "")) for group in match.groups())
    assert after < before / 10
    # Below 105.6, the perplexity of the poems' token frequencies alone: the
    # model reads its input, not just which tokens are common.
    assert after < 100, after
    samples = re.findall(r"^\[[^\]]+\] (.*)$", result.stdout, re.MULTILINE)
    assert len(samples) >= 2, result.stdout
    for sample in samples:
        assert sample.startswith("春眠不觉晓")
        assert "\ufffd" not in sample
        # Text, not the one character the model wrote before min_new_tokens.
        assert sum(map(is_ideograph, sample[len("春眠不觉晓"):])) >= 10, sample
        assert cjk_share(sample) >= 0.9, sample
        assert "，" in sample or "。" in sample, sample
    assert (tmp_path / "demo" / ".kgpt2-demo").is_file()
    # Mixed bfloat16 where it is the faster step (then generation in float32).
    from kgpt2.training.compiling import accumulates_in_float32

    precision = "mixed_bfloat16" if accumulates_in_float32("mixed_bfloat16") else "float32"
    assert re.search(rf"learning rate [\d.e-]+, {precision}, Keras backend", output), output
