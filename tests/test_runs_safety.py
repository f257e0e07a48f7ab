"""Run folders and saved presets: kgpt2 never destroys what it did not write.

Each data-loss case asserts that the user's files are byte-for-byte intact
afterwards; each broken-run-file case asserts a `kgpt2.Error` that names the
file and the way out. Most cases drive `RunDirectory`, what `kgpt2.finetune`
opens, with a compiled tiny model and no training; the few that need a real
training loop share the session's JAX compilation cache (tests/conftest.py).
"""

import json
import os
import pathlib
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from training_helpers import SEQUENCE_LENGTH
from training_helpers import TANG
from training_helpers import text_dataset

import kgpt2
from kgpt2 import runs
from kgpt2.training.callbacks.metrics_csv import truncate_metrics
from kgpt2.training.checkpoints import RunDirectory

ROOT = pathlib.Path(__file__).parent.parent


def snapshot(folder):
    """Every file under `folder`, as {relative path: bytes}."""
    folder = pathlib.Path(folder)
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*")) if path.is_file()
    }


def user_folder(path):
    """A folder of someone's files, in the places kgpt2 writes its own."""
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("my notes\n")
    (path / "metrics.csv").write_text("not kgpt2's\n")
    (path / "samples.txt").write_text("mine\n")
    (path / "ckpt-00000001-abcdef").mkdir()
    (path / "ckpt-00000001-abcdef" / "weights.bin").write_bytes(b"\x00\x01\x02")
    return snapshot(path)


@pytest.fixture(scope="module")
def compiled_lm():
    """A compiled tiny model with a built optimizer: what a checkpoint saves."""
    lm = kgpt2.load("gpt2_tiny_random", sequence_length=SEQUENCE_LENGTH)
    kgpt2.compile_lm(lm, steps=10)
    lm.optimizer.build(lm.trainable_variables)
    return lm


@pytest.fixture(scope="module")
def template(tmp_path_factory, compiled_lm):
    """A run `run1` with checkpoints at steps 1, 2 and 3 and a metrics.csv."""
    checkpoint_dir = tmp_path_factory.mktemp("template")
    with RunDirectory.open(checkpoint_dir, "run1", keep_checkpoints=3) as run:
        for step in (1, 2, 3):
            run.save(compiled_lm, step=step, state={})
        run.metrics_csv.write_text("step,loss\r\n1,10.5\r\n2,10.4\r\n3,10.3\r\n")
    return checkpoint_dir


@pytest.fixture()
def checkpoints(tmp_path, template):
    """A copy of the template's checkpoint_dir for one test to change."""
    return pathlib.Path(shutil.copytree(template, tmp_path / "checkpoints"))


def checkpoint_steps(run):
    return [runs.checkpoint_step(folder) for folder in runs.list_checkpoints(run)]


# --- kgpt2.save ----------------------------------------------------------------


def test_save_replaces_only_its_own_presets(tmp_path, tiny_lm, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = user_folder(tmp_path / "mine")
    with pytest.raises(kgpt2.PresetError, match="has no .kgpt2-manifest.json, so kgpt2 did not write it"):
        kgpt2.save(tiny_lm, tmp_path / "mine")
    assert snapshot(tmp_path / "mine") == before

    # Its own preset is replaced; an empty folder is used.
    kgpt2.save(tiny_lm, "model")
    kgpt2.save(tiny_lm, "model")
    (tmp_path / "empty").mkdir()
    kgpt2.save(tiny_lm, "empty")
    assert (tmp_path / "empty" / "config.json").is_file()
    with pytest.raises(kgpt2.PresetError, match="overwrite=True"):
        kgpt2.save(tiny_lm, "model", overwrite=False)
    assert snapshot(tmp_path / "mine") == before


@pytest.mark.slow
def test_save_refuses_the_working_folder_its_parents_and_runs(tmp_path, tiny_lm, template, monkeypatch):
    work = tmp_path / "work"
    before = user_folder(work)
    monkeypatch.chdir(work)
    for destination in (".", "", str(work), str(tmp_path), "..", "/"):
        with pytest.raises(kgpt2.PresetError, match="working folder or one above it"):
            kgpt2.save(tiny_lm, destination)
    run = template / "run1"
    run_before = snapshot(run)
    for destination in (run, run / "new_model", runs.latest_checkpoint(run) / "model"):
        with pytest.raises(kgpt2.PresetError, match="training run"):
            kgpt2.save(tiny_lm, destination)
    assert snapshot(work) == before and snapshot(run) == run_before


def test_save_and_load_expand_home_the_same_way_and_give_umask_permissions(tmp_path, tiny_lm, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    old_umask = os.umask(0o022)
    try:
        folder = kgpt2.save(tiny_lm, "~/saved")
    finally:
        os.umask(old_umask)
    assert folder == tmp_path / "saved" and not (tmp_path / "~").exists()
    assert oct(folder.stat().st_mode & 0o777) == oct(0o755)
    assert kgpt2.load("~/saved").count_params() == tiny_lm.count_params()
    # A path whose parent is a file: a clear error, nothing written.
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(kgpt2.Error, match="a_file"):
        kgpt2.save(tiny_lm, tmp_path / "a_file" / "model")
    assert (tmp_path / "a_file").read_text() == "x"


# --- adopting a folder as a run ------------------------------------------------


def test_finetune_refuses_a_folder_that_is_not_a_run(tmp_path, fresh_tiny_lm):
    before = user_folder(tmp_path / "results")
    with pytest.raises(kgpt2.Error, match="not empty.*not a kgpt2 run"):
        kgpt2.finetune(
            fresh_tiny_lm, text_dataset(), steps=2, checkpoint_dir=tmp_path,
            run_name="results",
        )
    assert snapshot(tmp_path / "results") == before
    # A new or empty folder becomes a run.
    (tmp_path / "empty").mkdir()
    for name in ("new", "empty"):
        with RunDirectory.open(tmp_path, name):
            assert runs.is_run(tmp_path / name)


def test_a_checkpoint_dir_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoint").write_text("x")
    with pytest.raises(runs.RunError, match=r"checkpoint_dir '.*checkpoint' is a file.*--checkpoint-dir"):
        RunDirectory.open(tmp_path / "checkpoint", "run1")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "run1").write_text("x")
    with pytest.raises(runs.RunError, match="run folder .* is a file"):
        RunDirectory.open(tmp_path / "dir", "run1")
    assert (tmp_path / "checkpoint").read_text() == "x"


@pytest.mark.slow
def test_the_cli_names_a_checkpoint_dir_that_is_a_file_or_a_foreign_folder(tmp_path, capsys):
    from kgpt2.cli import main

    (tmp_path / "a_file").write_text("x")
    before = user_folder(tmp_path / "mine" / "run1")
    arguments = [
        "finetune", "--preset", "gpt2_tiny_random", "--data", f"poetry:{TANG}", "--steps", "2",
        "--sequence-length", "32",
    ]
    for checkpoint_dir, message in ((tmp_path / "a_file", "is a file"), (tmp_path / "mine", "not a kgpt2 run")):
        assert main([*arguments, "--checkpoint-dir", str(checkpoint_dir)]) == 1
        error = capsys.readouterr().err
        assert error.startswith("kgpt2 finetune: error: ") and message in error, error
        assert str(checkpoint_dir) in error and "Traceback" not in error
    assert (tmp_path / "a_file").read_text() == "x"
    assert snapshot(tmp_path / "mine" / "run1") == before


# --- pruning and readers -------------------------------------------------------


@pytest.mark.slow
def test_pruning_counts_the_checkpoints_on_disk(checkpoints, compiled_lm):
    run_dir = checkpoints / "run1"
    # A save that a crash cut short after its rename: never named by LATEST.
    orphan = run_dir / "ckpt-00000009-abcdef"
    shutil.copytree(runs.latest_checkpoint(run_dir), orphan)
    with RunDirectory.open(checkpoints, "run1", keep_checkpoints=2) as run:
        run.save(compiled_lm, step=4, state={})
        assert checkpoint_steps(run_dir) == [3, 4]
        assert runs.checkpoint_step(run.latest().path) == 4
    with RunDirectory.open(checkpoints, "run1", keep_checkpoints=3) as run:
        run.save(compiled_lm, step=5, state={})
        assert checkpoint_steps(run_dir) == [3, 4, 5]
        # A checkpoint a reader holds is kept until a later save.
        with runs.reading_latest(run_dir) as held:
            run.save(compiled_lm, step=6, state={})
            run.save(compiled_lm, step=7, state={})
            run.save(compiled_lm, step=8, state={})
            assert (held / "config.json").is_file()
            assert checkpoint_steps(run_dir) == [5, 6, 7, 8]
        run.save(compiled_lm, step=9, state={})
        assert checkpoint_steps(run_dir) == [7, 8, 9]


READER = """
import sys, time, pathlib, kgpt2
run, progress = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
kgpt2.load(run)  # imports Keras before the writer starts
print("READY", flush=True)
loads = failures = 0
deadline = time.monotonic() + 240
while not (run.parent / "stop").exists() and time.monotonic() < deadline:
    try:
        kgpt2.load(run)
        loads += 1
    except Exception as error:
        failures += 1
        print("FAILED", type(error).__name__, error, flush=True)
    progress.write_text(str(loads))
print("DONE", loads, failures, flush=True)
"""

@pytest.mark.slow
def test_a_reader_always_gets_a_whole_checkpoint_while_a_trainer_saves_every_step(checkpoints, compiled_lm):
    run_dir, progress = checkpoints / "run1", checkpoints.parent / "loads"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(run_dir), str(progress)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        for line in reader.stdout:  # TensorFlow's start-up lines come first
            if line.startswith(("READY", "Traceback")):
                break
        assert line.startswith("READY"), line
        saves, deadline = 0, time.monotonic() + 180
        with RunDirectory.open(checkpoints, "run1", keep_checkpoints=1) as run:
            # Replace the checkpoint as fast as possible until the reader
            # has loaded it several times meanwhile.
            while time.monotonic() < deadline and saves < 200:
                run.save(compiled_lm, step=10 + saves, state={})
                saves += 1
                if progress.exists() and int(progress.read_text() or 0) >= 3:
                    break
        (checkpoints / "stop").write_text("stop")
        output = reader.communicate(timeout=240)[0]
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    done = [line for line in output.splitlines() if line.startswith("DONE")]
    assert done, output[-3000:]
    loads, failures = map(int, done[-1].split()[1:])
    assert failures == 0, output[-3000:]
    assert loads >= 3 and saves >= loads, (saves, output[-3000:])
    # One checkpoint kept, and at most the one the reader held at the last save.
    assert checkpoint_steps(run_dir)[-1] == 9 + saves and len(checkpoint_steps(run_dir)) <= 2


# --- broken run files ----------------------------------------------------------


def damage(checkpoints, what):
    folder = runs.latest_checkpoint(checkpoints / "run1")
    if what == "state_not_json":
        (folder / "training_state.json").write_text("{not json")
    elif what == "state_empty":
        (folder / "training_state.json").write_text("{}")
    elif what.endswith("_deleted"):
        (folder / what.replace("_deleted", ".npz")).unlink()
    elif what.endswith("_truncated"):
        path = folder / what.replace("_truncated", ".npz")
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("what, file", [
    ("state_not_json", "training_state.json"),
    ("state_empty", "training_state.json"),
    ("optimizer_deleted", "optimizer.npz"),
    ("optimizer_truncated", "optimizer.npz"),
    ("model_state_deleted", "model_state.npz"),
    ("model_state_truncated", "model_state.npz"),
])
def test_broken_checkpoint_files_are_named_with_the_way_out(checkpoints, compiled_lm, what, file):
    folder = damage(checkpoints, what)
    with pytest.raises(kgpt2.Error) as caught:
        with RunDirectory.open(checkpoints, "run1") as run:
            run.restore(compiled_lm, run.latest())
    message = str(caught.value)
    assert str(folder / file) in message, message
    assert "restore_from='fresh'" in message and "--restore-from fresh" in message
    assert f"kgpt2.load('{checkpoints / 'run1'}')" in message
    if what in ("state_empty", "optimizer_truncated"):
        # The way out works: the model weights alone still load.
        assert kgpt2.load(checkpoints / "run1").count_params() == compiled_lm.count_params()


def test_a_metrics_csv_that_is_not_text_is_named(tmp_path):
    # Only the file matters: no run (and no model to checkpoint) needed.
    metrics = tmp_path / "metrics.csv"
    metrics.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00binary")
    with pytest.raises(kgpt2.Error, match=r"metrics\.csv is not a text CSV file.*--restore-from fresh"):
        truncate_metrics(metrics, 2)
    assert metrics.read_bytes().startswith(b"\x89PNG")
    text = tmp_path / "text.csv"
    text.write_text("step,loss\r\n1,2.5\r\n2,2.4\r\n3,2.3\r\n")
    truncate_metrics(text, 2)
    assert text.read_text().splitlines()[-1].startswith("2,")


@pytest.mark.slow
def test_a_write_failing_mid_checkpoint_keeps_the_previous_one(checkpoints, compiled_lm):
    run_dir = checkpoints / "run1"
    before = snapshot(run_dir)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a kill
    try:
        with RunDirectory.open(checkpoints, "run1") as run:
            # 4 MiB: the weights file (13 MB) fails, while pytest's own output
            # files, which share this process's limit, stay well below it.
            resource.setrlimit(resource.RLIMIT_FSIZE, (4 * 1024 * 1024, limits[1]))
            try:
                with pytest.raises(kgpt2.errors.WriteError) as caught:
                    run.save(compiled_lm, step=4, state={})
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, limits)
    finally:
        signal.signal(signal.SIGXFSZ, handler)
    message = str(caught.value)
    assert "step 4" in message and "previous checkpoint" in message and "step 3" in message
    assert "is intact" in message, message
    after = snapshot(run_dir)
    assert {k: v for k, v in after.items() if k != ".lock"} == {k: v for k, v in before.items() if k != ".lock"}
    assert not [name for name in os.listdir(run_dir) if name.startswith(".staging")]
    assert kgpt2.load(run_dir).count_params() == compiled_lm.count_params()


READ_ONLY = """
import ctypes, json, os, sys
if os.geteuid() == 0 and "DROPPED" not in os.environ:
    # Root writes anywhere: drop the capabilities that bypass file modes
    # (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from the bounding set, then
    # exec again so that they are gone from this process too.
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        assert libc.prctl(24, capability, 0, 0, 0) == 0, "PR_CAPBSET_DROP failed"
    os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, DROPPED="1"))
from kgpt2.training.checkpoints import RunDirectory
results = {}
for checkpoint_dir in sys.argv[1:]:
    try:
        RunDirectory.open(checkpoint_dir, "run1").close()
        results[checkpoint_dir] = "opened"
    except Exception as error:
        results[checkpoint_dir] = f"{type(error).__name__}: {error}"
print(json.dumps(results))
"""


@pytest.mark.slow
def test_read_only_folders_are_refused_before_training(checkpoints):
    # A folder an ordinary user can reach (pytest's own is private to root).
    base = pathlib.Path(tempfile.mkdtemp())
    script = pathlib.Path(tempfile.mkdtemp()) / "check.py"
    script.write_text(READ_ONLY)
    try:
        run_dir = base / "runs" / "run1"
        shutil.copytree(checkpoints / "run1", run_dir)
        read_only_parent = base / "read_only"
        read_only_parent.mkdir()
        for folder in [base, base / "runs", *run_dir.rglob("*"), run_dir, read_only_parent]:
            os.chmod(folder, 0o555 if folder.is_dir() else 0o444)
        before = snapshot(run_dir)
        output = subprocess.run(
            [sys.executable, str(script), str(base / "runs"), str(read_only_parent / "new")],
            capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        assert output.returncode == 0, output.stderr[-3000:]
        results = json.loads(output.stdout.strip().splitlines()[-1])
        in_run, in_parent = results[str(base / "runs")], results[str(read_only_parent / "new")]
        assert in_run.startswith("WriteError") and str(run_dir) in in_run, in_run
        assert f"kgpt2.load('{run_dir}') still reads" in in_run
        assert in_parent.startswith("WriteError") and "--checkpoint-dir" in in_parent, in_parent
        assert snapshot(run_dir) == before
    finally:
        for folder in [base, *base.rglob("*")]:
            if folder.is_dir():
                os.chmod(folder, 0o755)
        shutil.rmtree(base)
        shutil.rmtree(script.parent, ignore_errors=True)


# --- a real training loop ------------------------------------------------------


@pytest.mark.slow
def test_resume_keeps_the_runs_checkpoints_and_fresh_after_nan_leaves_no_stale_pointer(checkpoints):
    run_dir = checkpoints / "run1"
    lm = kgpt2.load("gpt2_tiny_random", sequence_length=SEQUENCE_LENGTH)
    options = dict(checkpoint_dir=checkpoints, save_every=1, learning_rate=1e-3)
    # Resumed at step 3 with three checkpoints kept: the first save keeps two of them.
    result = kgpt2.finetune(lm, text_dataset(), steps=4, keep_checkpoints=3, **options)
    assert (result.resumed_from, result.step) == (3, 4)
    assert checkpoint_steps(run_dir) == [2, 3, 4]

    # Start over, and diverge at once: nothing of the old run is left to point at.
    embeddings = lm.backbone.token_embedding.embeddings
    embeddings.assign(np.full(embeddings.shape, np.nan, "float32"))
    result = kgpt2.finetune(lm, text_dataset(), steps=4, restore_from="fresh", **options)
    assert result.stop_reason == "nan" and (result.step, result.checkpoint) == (0, None)
    assert not (run_dir / "LATEST").exists() and checkpoint_steps(run_dir) == []
    assert "no checkpoint of this run was written" in result.message
    assert "last good" not in result.message
    with pytest.raises(kgpt2.PresetError, match="has no checkpoint yet"):
        kgpt2.load(run_dir)
