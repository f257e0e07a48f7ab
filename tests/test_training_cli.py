"""`kgpt2 finetune` end to end, and its errors."""

import logging
import math

import numpy as np
import pytest
from training_helpers import TANG
from training_helpers import enable_jax_compilation_cache

import kgpt2
from kgpt2.cli import main
from kgpt2.training.callbacks.metrics_csv import read_metrics


@pytest.fixture(scope="module", autouse=True)
def jax_cache(tmp_path_factory):
    enable_jax_compilation_cache(tmp_path_factory)


def mean(values):
    return sum(values) / len(values)


def logged(caplog):
    text = "\n".join(record.getMessage() for record in caplog.records)
    caplog.clear()
    return text


@pytest.mark.slow
def test_finetune_cli_loss_falls_schedule_ends_and_the_run_loads(tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="kgpt2")
    arguments = [
        "finetune", "--preset", "gpt2_tiny_random", "--data", f"poetry:{TANG}",
        "--validation-split", "0.2",  # 48 poems to train on: 12 batches of 4
        "--epochs", "2", "--batch-size", "4", "--sequence-length", "32",
        "--learning-rate", "2e-3", "--warmup-steps", "3", "--end-learning-rate", "1e-5",
        "--checkpoint-dir", str(tmp_path), "--run-name", "poems", "--save-every", "10",
        "--sample-every", "12", "--sample-prompt", "春", "--sample-length", "12",
        "--print-every", "6",
    ]
    assert main(arguments) == 0
    out = logged(caplog)
    run_dir = tmp_path / "poems"
    rows = read_metrics(run_dir / "metrics.csv")
    assert [row["step"] for row in rows] == list(range(1, 25))
    losses = [row["loss"] for row in rows]
    assert mean(losses[-4:]) < mean(losses[:4]) - 0.5, losses
    # Warmup to the peak at step 3, then down to end_learning_rate after the
    # last step: the CSV logs the rate after each step.
    assert rows[2]["learning_rate"] == pytest.approx(2e-3)
    assert rows[-1]["learning_rate"] == pytest.approx(1e-5)
    rates = [row["learning_rate"] for row in rows[2:]]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    # Validation after each epoch, on the epoch's last step.
    validated = [row for row in rows if row["val_loss"] is not None]
    assert [row["step"] for row in validated] == [12, 24]
    assert validated[-1]["val_perplexity"] == pytest.approx(math.exp(validated[-1]["val_loss"]), rel=1e-4)
    assert all(row["tokens_per_second"] > 0 for row in rows)
    assert "step 6/24  loss" in out and "Saved step 10 to" in out and "epoch 2  step 24  val_loss" in out
    assert "steps 1-24, 12 steps per epoch (one pass over the data)" in out

    # The run directory: LATEST names the only checkpoint kept.
    checkpoints = sorted(p.name for p in run_dir.glob("ckpt-*"))
    assert len(checkpoints) == 1 and checkpoints[0].startswith("ckpt-00000024-")
    assert (run_dir / "LATEST").read_text().strip() == f"{checkpoints[0]}/model"
    assert (run_dir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    samples = (run_dir / "samples.txt").read_text("utf-8")
    assert samples.count("======== step 12 ========\n春") == 1 and "======== step 24" in samples

    lm = kgpt2.load(run_dir)
    initial = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    assert lm.preprocessor.sequence_length == 32
    assert not np.allclose(lm.get_weights()[0], initial.get_weights()[0])
    assert lm.generate("春", max_length=6).startswith("春")

    # The CLI round trip: `kgpt2 generate --preset checkpoint/<run>`.
    capsys.readouterr()
    assert main(["generate", "--preset", str(run_dir), "--prompt", "春",
                 "--sampler", "greedy", "--max-length", "12"]) == 0
    expected = kgpt2.generate(lm, "春", sampler="greedy", max_length=12)[0]
    assert capsys.readouterr().out.startswith(expected + "\n")

    # The same command again: the run is complete, nothing to do.
    logged(caplog)
    assert main(arguments) == 0
    assert "nothing to train" in logged(caplog)
    # Another sequence length and learning rate: each change is named.
    changed = [*arguments, "--sequence-length", "48", "--learning-rate", "1e-3"]
    assert main(changed) == 0
    notes = logged(caplog)
    assert "note: learning_rate was 0.002, now 0.001" in notes
    assert "note: sequence_length was 32, now 48" in notes and "nothing to train" in notes


@pytest.mark.parametrize(
    "options, message",
    [
        (["--run-name", "../outside"], "run_name '../outside' is a path"),
        (["--data", "ftp:somewhere"], "Unknown data spec scheme 'ftp'"),
        (["--data", "poetry:/no/such/file.json"], "/no/such/file.json"),
        (["--lora-rank", "0"], "--lora-rank must be an integer >= 1"),
    ],
)
def test_finetune_cli_errors_name_the_cause(tmp_path, capsys, options, message):
    data = [] if "--data" in options else ["--data", f"poetry:{TANG}"]  # --data is given once
    arguments = [
        "finetune", "--preset", "gpt2_tiny_random", *data, "--steps", "2",
        "--sequence-length", "32", "--checkpoint-dir", str(tmp_path), *options,
    ]
    assert main(arguments) == 1
    error = capsys.readouterr().err
    assert error.startswith("kgpt2 finetune: error: ") and message in error, error


def test_help_shows_every_default(capsys):
    import argparse

    from kgpt2.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    flags = [action for action in subparsers.choices["finetune"]._actions if action.option_strings]
    optional = [a for a in flags if not a.required and a.option_strings != ["-h", "--help"]]
    assert len(optional) > 20
    for action in optional:
        assert "(default: " in action.help, action.option_strings
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 0.002 for the *_random presets" in out
    assert "steps between samples, plus one at the end (0: none) (default: 100)" in out


def test_steps_and_epochs_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--data", "text:x.txt", "--steps", "2", "--epochs", "2"])
    assert "not allowed with argument" in capsys.readouterr().err
