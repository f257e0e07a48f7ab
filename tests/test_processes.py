"""Training in two processes on JAX's distributed runtime equals training in one.

Two worker processes (tests/processes_worker.py) join a group on
127.0.0.1 once for the whole module: they run `kgpt2 finetune` with its
default options, then train a stopped-and-resumed run per distribution;
this process trains the same global batches alone and compares.
"""

import functools
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from processes_worker import SEQUENCE_LENGTH
from processes_worker import STEPS
from processes_worker import STOP_AT
from processes_worker import batches
from processes_worker import options

from kgpt2.training.callbacks.metrics_csv import read_metrics

ROOT = pathlib.Path(__file__).parent.parent
WORKER = pathlib.Path(__file__).parent / "processes_worker.py"
MODES = ["data_parallel", "model_parallel"]
# Both workers must finish within this, even on a loaded 2-core machine.
TIMEOUT_S = 900


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    """Run both workers once; return the folder of their runs and reports."""
    out_dir = tmp_path_factory.mktemp("processes")
    coordinator = f"127.0.0.1:{_free_port()}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    # conftest points HTTP(S) proxies at a closed port; gRPC, which the
    # processes connect with, would go through it and hang.
    for variable in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        env.pop(variable, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    workers, logs = [], []
    try:
        for process_id in range(2):
            log = open(out_dir / f"worker-{process_id}.log", "w")
            logs.append(log)
            workers.append(subprocess.Popen(
                [sys.executable, str(WORKER), str(process_id), "2", coordinator, str(out_dir), *MODES],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            ))
        deadline = time.monotonic() + TIMEOUT_S
        for worker in workers:
            worker.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        for log in logs:
            log.close()
    for process_id, worker in enumerate(workers):
        tail = (out_dir / f"worker-{process_id}.log").read_text()[-3000:]
        assert worker.returncode == 0, f"worker {process_id} failed:\n{tail}"
    return out_dir


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """The same run in this process, on one device, without a distribution."""
    import keras

    import kgpt2

    assert keras.config.backend() == "jax", "the workers train on JAX: compare on JAX"
    out_dir = tmp_path_factory.mktemp("alone")
    lm = kgpt2.load("gpt2_tiny_random", sequence_length=SEQUENCE_LENGTH, seed=0)
    result = kgpt2.finetune(
        lm, batches(lm), checkpoint_dir=str(out_dir), run_name="alone", **options(None)
    )
    assert result.step == STEPS
    return result.run_dir


def _losses(run_dir):
    return [row["loss"] for row in read_metrics(run_dir / "metrics.csv")]


@functools.lru_cache(maxsize=None)
def _weights(run_dir):
    import kgpt2

    return kgpt2.load(str(run_dir)).get_weights()


def _report(group, run_name, process_id):
    import json

    return json.loads((group / f"{run_name}-{process_id}.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_two_processes_train_like_one(group, alone, mode):
    losses = _losses(group / mode)
    assert len(losses) == STEPS
    assert losses[-1] < losses[0]  # it trains
    np.testing.assert_allclose(losses, _losses(alone), atol=1e-4, rtol=0)
    for together, single in zip(_weights(group / mode), _weights(alone), strict=True):
        np.testing.assert_allclose(together, single, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_the_finetune_command_with_its_defaults_trains_and_samples_in_two_processes(group):
    # The last step's sample once ended every data-parallel run in a crash.
    assert [_report(group, "cli", process_id)["status"] for process_id in range(2)] == [0, 0]
    run = group / "checkpoint" / "run1"
    assert [row["step"] for row in read_metrics(run / "metrics.csv")] == list(range(1, STEPS + 1))
    samples = (run / "samples.txt").read_text("utf-8")
    assert samples.startswith(f"======== step {STEPS} ========\n") and samples.count("======== step") == 1
    assert len(list(run.glob("ckpt-*"))) == 1


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_both_processes_see_the_run_process_0_wrote(group, mode):
    reports = [_report(group, mode, process_id) for process_id in range(2)]
    assert [r["process_index"] for r in reports] == [0, 1]
    assert all(r["process_count"] == 2 and r["step"] == STEPS for r in reports)
    assert reports[0]["checkpoint"] == reports[1]["checkpoint"]
    assert pathlib.Path(reports[0]["checkpoint"]).is_dir()
    # Only process 0 records metrics.
    assert reports[0]["metrics"]["step"] == STEPS and reports[1]["metrics"] == {}
    assert len(list((group / mode).glob("ckpt-*"))) == 1
    # Samples are on by default: one at the last step, by every process, written by process 0.
    assert (group / mode / "samples.txt").read_text("utf-8").startswith(f"======== step {STEPS} ========\n")


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_a_stopped_group_resumes_at_its_checkpoint(group, mode):
    for process_id in range(2):
        report = _report(group, mode, process_id)
        assert report["stopped_at"] == report["resumed_from"] == STOP_AT
        assert report["step"] == STEPS and report["stop_reason"] == "completed"


@pytest.mark.slow
@pytest.mark.parametrize("mode, fraction", [("data_parallel", 1.0), ("model_parallel", 0.5)])
def test_a_model_loaded_laid_out_is_created_in_shards(group, mode, fraction):
    # Layer norms and output biases stay whole: a little over half.
    for process_id in range(2):
        assert _report(group, mode, process_id)["held_fraction"] == pytest.approx(fraction, abs=0.01)


def test_options_come_from_jax_environment_variables(monkeypatch):
    from kgpt2.training.processes import process_options

    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    assert process_options() == (4, 3, "10.0.0.1:1234")
    assert process_options(num_processes=8, process_id=5) == (8, 5, "10.0.0.1:1234")


def test_a_single_process_needs_no_group(monkeypatch):
    import kgpt2
    from kgpt2.training.processes import process_options

    for variable in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "SLURM_NTASKS"):
        monkeypatch.delenv(variable, raising=False)
    assert process_options() == (1, 0, None)
    assert kgpt2.connect_processes() == (1, 0)


@pytest.mark.parametrize("options, message", [
    (dict(num_processes=2, process_id=2), "below num_processes"),
    (dict(num_processes=0), "num_processes"),
    (dict(coordinator="localhost"), "HOST:PORT"),
])
def test_bad_process_options_are_refused_early(options, message):
    import kgpt2
    from kgpt2.errors import InputError

    with pytest.raises(InputError, match=message):
        kgpt2.RunOptions(**options)


@pytest.mark.parametrize("mode", MODES)
def test_finetune_flags_take_a_distribution_over_processes(mode):
    import argparse

    from kgpt2.cli import finetune
    from kgpt2.cli.option_flags import given_options

    commands = argparse.ArgumentParser().add_subparsers()
    finetune.register(commands)
    parser = commands.choices["finetune"]
    args = parser.parse_args(["--data", "text:a.txt", "--distribution", mode, "--num-processes", "2",
                              "--process-id", "1", "--coordinator", "127.0.0.1:1234"])
    import kgpt2

    assert kgpt2.Recipe(**given_options(args, kgpt2.Recipe)).distribution == mode
    run = kgpt2.RunOptions(**given_options(args, kgpt2.RunOptions))
    assert (run.num_processes, run.process_id, run.coordinator) == (2, 1, "127.0.0.1:1234")


@pytest.mark.parametrize("preset, distribution, message", [
    ("gpt2_tiny_random", "pipeline", "distribution must be one of"),
    # The layout needs the shape before anything is downloaded.
    ("hf://someone/gpt2", "model_parallel", "needs the shape of 'hf://someone/gpt2'"),
])
def test_load_refuses_a_layout_it_cannot_create(preset, distribution, message):
    import kgpt2

    with pytest.raises(kgpt2.Error, match=message):
        kgpt2.load(preset, distribution=distribution)


def test_each_process_gets_its_contiguous_rows_of_every_batch():
    import tensorflow as tf

    from kgpt2.training.processes import shard_batches

    batches = tf.data.Dataset.range(12).batch(4)
    parts = [[b.numpy().tolist() for b in shard_batches(batches, 2, i)] for i in range(2)]
    assert parts == [[[0, 1], [4, 5], [8, 9]], [[2, 3], [6, 7], [10, 11]]]
    tokenized = tf.data.Dataset.from_tensors(({"token_ids": tf.zeros((4, 3))}, tf.ones((4, 3))))
    x, y = next(iter(shard_batches(tokenized, 4, 1)))
    assert x["token_ids"].shape == (1, 3) and y.shape == (1, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="divide"):
        list(shard_batches(tf.data.Dataset.range(6).batch(3), 2, 0))
