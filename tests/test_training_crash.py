"""Crash safety with real subprocesses: SIGKILL, Ctrl-C, and a kill mid-save.

These tests start `tests/training_child.py` (one Python process each, which
imports TensorFlow/JAX and builds the model): that is what makes them take
tens of seconds, and it is the point: nothing is simulated in-process.
"""

import logging
import os
import signal

import numpy as np
import pytest
from training_helpers import SEQUENCE_LENGTH
from training_helpers import SETTINGS as SHARED_SETTINGS
from training_helpers import Child
from training_helpers import enable_jax_compilation_cache
from training_helpers import tokenize_to_file
from training_helpers import tokenized_dataset

import kgpt2
from kgpt2.training.callbacks.metrics_csv import read_metrics
from kgpt2.training.checkpoints import RunDirectory


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory):
    return enable_jax_compilation_cache()


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    return str(tokenize_to_file(tmp_path_factory.mktemp("tokens") / "tang.npz"))


# 24 poems in batches of 4 (reshuffled each pass, seeded): 6 batches per
# pass, 8 steps in 2 epochs of 4, so the run crosses a pass and an epoch.
DATASET = dict(count=24, batch_size=4, shuffle_seed=1)
SETTINGS = dict(SHARED_SETTINGS, save_every=3, print_every=1)


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_matches_an_uninterrupted_run(tmp_path, tokens, jax_cache, caplog):
    checkpoints = tmp_path / "checkpoint"
    child = Child(
        "train",
        dict(
            data=tokens, dataset=DATASET, jax_cache=jax_cache, pause_after_step=(4, 600),
            finetune=dict(SETTINGS, checkpoint_dir=str(checkpoints), run_name="killed"),
        ),
        tmp_path,
    )
    child.wait_for("Saved step 3")
    child.wait_for("PAUSED after step 4")  # step 4 is trained but not saved
    child.process.send_signal(signal.SIGKILL)
    returncode, output = child.finish()
    assert returncode == -signal.SIGKILL
    assert [row["step"] for row in read_metrics(checkpoints / "killed" / "metrics.csv")] == [1, 2, 3, 4]

    resumed_lm = kgpt2.load("gpt2_tiny_random", sequence_length=SEQUENCE_LENGTH)
    caplog.set_level(logging.INFO, logger="kgpt2")
    resumed = kgpt2.finetune(
        resumed_lm, tokenized_dataset(tokens, **DATASET), checkpoint_dir=checkpoints,
        run_name="killed", **SETTINGS,
    )
    lines = [record.getMessage() for record in caplog.records]
    assert any("Resuming" in line and "at step 3" in line for line in lines)
    reference_lm = kgpt2.load("gpt2_tiny_random", sequence_length=SEQUENCE_LENGTH)
    reference = kgpt2.finetune(
        reference_lm, tokenized_dataset(tokens, **DATASET), checkpoint_dir=checkpoints,
        run_name="uninterrupted", **SETTINGS,
    )

    assert (resumed.resumed_from, resumed.step, reference.step) == (3, 8, 8)
    assert int(resumed_lm.optimizer.iterations) == int(reference_lm.optimizer.iterations) == 8
    assert float(resumed_lm.optimizer.learning_rate) == float(reference_lm.optimizer.learning_rate) == 0.0
    for mine, theirs in [
        (resumed_lm.get_weights(), reference_lm.get_weights()),
        (resumed_lm.optimizer.variables, reference_lm.optimizer.variables),
    ]:
        for a, b in zip(mine, theirs):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    # Same data, same dropout masks: the same loss at every step, and the
    # step the kill lost (4) is logged once, as retrained.
    killed_rows = read_metrics(checkpoints / "killed" / "metrics.csv")
    reference_rows = read_metrics(checkpoints / "uninterrupted" / "metrics.csv")
    assert [row["step"] for row in killed_rows] == list(range(1, 9))
    for key in ("loss", "accuracy", "learning_rate"):
        np.testing.assert_allclose(
            [row[key] for row in killed_rows], [row[key] for row in reference_rows], rtol=1e-4
        )
    assert [row["epoch"] for row in killed_rows] == [1, 1, 1, 1, 2, 2, 2, 2]


@pytest.mark.slow
def test_ctrl_c_saves_the_current_step_before_exiting(tmp_path, tokens, jax_cache):
    checkpoints = tmp_path / "checkpoint"
    child = Child(
        "train",
        dict(
            data=tokens, dataset=DATASET, jax_cache=jax_cache, pause_after_step=(2, 120),
            # save_every's default: no periodic checkpoint before the signal's.
            finetune=dict(SHARED_SETTINGS, print_every=1, checkpoint_dir=str(checkpoints)),
        ),
        tmp_path,
    )
    child.wait_for("PAUSED after step 2")
    child.process.send_signal(signal.SIGINT)
    returncode, output = child.finish()
    assert returncode == 0, output
    # The signal arrived during step 2's callbacks: step 3 ends the run.
    assert "SIGINT: stopping after this step and saving a checkpoint" in output
    assert "RESULT interrupted 3" in output and "Saved step 3" in output
    assert "step 4/8" not in output
    with RunDirectory.open(checkpoints, "run1") as run:
        assert run.latest().step == 3
    loaded = kgpt2.load(checkpoints / "run1")
    assert loaded.preprocessor.sequence_length == SEQUENCE_LENGTH


@pytest.mark.slow
def test_a_kill_during_a_save_leaves_the_previous_checkpoint_loadable(tmp_path, jax_cache):
    # Two kill points, in two children started together: while the new
    # checkpoint is being written, and after it is complete but before
    # LATEST names it.
    children = {
        pause_in: Child(
            "save",
            dict(checkpoint_dir=str(tmp_path / pause_in), pause_in=pause_in, jax_cache=jax_cache),
            tmp_path / pause_in,
        )
        for pause_in in ["staging", "pointer"]
        if (tmp_path / pause_in).mkdir() is None
    }
    original = kgpt2.load("gpt2_tiny_random", sequence_length=SEQUENCE_LENGTH)
    kgpt2.compile_lm(original, steps=10)
    for pause_in, child in children.items():
        child.wait_for("SAVED step 1")
        child.wait_for("PAUSED")
        child.process.send_signal(signal.SIGKILL)
        returncode, output = child.finish()
        assert returncode == -signal.SIGKILL and "SAVED step 2" not in output
        run_dir = tmp_path / pause_in / "run1"
        leftover = {"staging": ".staging-ckpt-00000002-", "pointer": "ckpt-00000002-"}[pause_in]
        assert any(name.startswith(leftover) for name in os.listdir(run_dir))

        # The run loads, as step 1: the seed-0 weights the child saved
        # before changing them.
        loaded = kgpt2.load(run_dir)
        assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), original.get_weights()))
        # Training resumes from it, and the next save clears the leftovers.
        with RunDirectory.open(tmp_path / pause_in, "run1") as run:
            assert not [name for name in os.listdir(run_dir) if name.startswith(".staging")]
            assert run.latest().step == 1
            run.restore(original, run.latest())
            run.save(original, step=3, state={})
        remaining = [name for name in os.listdir(run_dir) if "ckpt" in name]
        assert len(remaining) == 1 and remaining[0].startswith("ckpt-00000003-"), remaining
