"""The `Example:` blocks of kgpt2's docstrings run, and print what they claim.

See docstring_examples.py for what counts as a claim. Examples that build a
model (seconds each) are `slow`; those about what importing loads run in a new
process. Those that cannot run here, and those that train (the tests named
beside each cover the same calls), are listed in NOT_RUN with the reason, and
carry no output claims.
"""

import tempfile

import pytest
from docstring_examples import Example
from docstring_examples import claims
from docstring_examples import find_examples
from docstring_examples import run_example
from docstring_examples import run_example_in_a_new_process

NOT_RUN = {
    "kgpt2/bench/backends.py::measure_in_subprocess":
        "starts a TensorFlow process (test_bench_backends.py runs that path)",
    "kgpt2/bench/hf.py::run_hf_peer": "needs a Python with torch and transformers",
    # One example runs `kgpt2.bench.run` (benchmark.py::run); the report and
    # plot examples build a `BenchReport` from data.
    **{name: "a benchmark run (seconds of compiling); " + covered_by for name, covered_by in {
        "kgpt2/bench/__init__.py::<module>": "the example of benchmark.py::run runs the same call",
        "kgpt2/bench/measure.py::measure_backend":
            "test_bench.py's `kgpt2 bench` smoke test runs it through kgpt2.bench.run",
    }.items()},
    "kgpt2/bench/peak.py::torch_matmul_peak": "needs a Python with torch",
    "kgpt2/data/download.py::fetch_chinese_poetry": "downloads",
    "kgpt2/data/tfds_source.py::tfds_text": "downloads",
    "kgpt2/data/tfds_source.py::reddit_tifu": "downloads",
    "kgpt2/runs.py::point_to": "needs a training run folder",
    "kgpt2/runs.py::Checkpoint": "needs a training run folder",
    "kgpt2/runs.py::read_checkpoint": "needs a training run folder",
    "kgpt2/runs.py::reading_latest": "needs a training run folder",
    "kgpt2/serving/server.py::<module>":
        "serves until stopped (test_serve_process.py runs the real server)",
    **{name: "trains a model (seconds of compiling); " + covered_by for name, covered_by in {
        "kgpt2/data/__init__.py::<module>": "test_data_fit.py fits every adapter",
        "kgpt2/data/pipeline.py::from_texts": "test_data_fit.py fits from_texts",
        "kgpt2/demo.py::run": "test_cli_output.py runs the demo",
        "kgpt2/training/__init__.py::<module>": "test_training_finetune.py",
        "kgpt2/training/callbacks/__init__.py::<module>": "test_training_finetune.py",
        "kgpt2/training/callbacks/checkpoint.py::RunCheckpoint": "test_training_crash.py",
        "kgpt2/training/callbacks/compile_progress.py::CompileProgress":
            "test_cli_output.py (its messages)",
        "kgpt2/training/callbacks/metrics_csv.py::MetricsCSV": "test_training_finetune.py",
        "kgpt2/training/callbacks/nan_stop.py::StopOnNaN": "test_runs_safety.py",
        "kgpt2/training/callbacks/samples.py::SampleEvery": "test_training_finetune.py",
        "kgpt2/training/callbacks/tensorboard.py::TensorBoardLogger": "test_interop_tensorboard.py",
        "kgpt2/training/callbacks/throughput.py::TokensPerSecond": "test_training_finetune.py",
        "kgpt2/training/compiling.py::compile_lm": "test_training_schedule.py",
        "kgpt2/training/distribution.py::prepare": "test_distribution.py",
        "kgpt2/training/distribution.py::distributed":
            "test_distribution.py (distribution_worker.py)",
        "kgpt2/training/finetune.py::finetune": "test_training_finetune.py",
    }.items()},
}
# About what importing kgpt2 loads: only true in a process that has not
# imported Keras yet (this one has), so they run in a new one.
IN_A_NEW_PROCESS = {"kgpt2/lazy.py::<module>"}
# Building a model, training, or packing text into token windows (which
# traces TensorFlow graphs around the tokenizer) takes seconds.
SLOW_MARKS = ("kgpt2.load(", "GPT2Backbone(", "initialize_laid_out(", "kgpt2.bench(",
              "bench.run(", "sample_rows(", "measure_backend(", "finetune(", ".fit(", "run(steps=",
              "training_tokens_per_second(", "measure_in_subprocess(", "pack")

EXAMPLES = find_examples()

# Examples that build no model but compile a sampler's loop, about a second of
# CPU each (measured with `-p cpu_times`).
SLOW_EXAMPLES = {"kgpt2/samplers/nucleus.py::draw", "kgpt2/samplers/utf8_continuation.py::<module>"}


def _param(example):
    slow = example.name in SLOW_EXAMPLES or any(mark in example.code for mark in SLOW_MARKS)
    marks = [pytest.mark.slow] if slow else []
    return pytest.param(example, id=example.name, marks=marks)


def test_examples_are_found():
    assert len(EXAMPLES) >= 100
    names = {example.name for example in EXAMPLES}
    assert "kgpt2/checks.py::check_number" in names
    # A renamed or removed function must not leave a stale entry.
    listed = set(NOT_RUN) | IN_A_NEW_PROCESS | SLOW_EXAMPLES
    assert listed <= names, listed - names


def test_examples_that_are_not_run_claim_no_output():
    for example in EXAMPLES:
        if example.name in NOT_RUN:
            claimed = [claim for _, claim in claims(example.code) if claim is not None]
            assert not claimed, f"{example.name} is not run, so it cannot claim {claimed}"


@pytest.mark.parametrize("example", [_param(e) for e in EXAMPLES if e.name not in NOT_RUN])
def test_example_runs_and_prints_what_it_claims(example, tmp_path, monkeypatch):
    # Examples may write relative paths ("checkpoint/run1"): keep them here.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    if example.name in IN_A_NEW_PROCESS:
        run_example_in_a_new_process(example.name)
    else:
        run_example(example)


def test_claims_are_print_comments_and_the_comment_lines_below_a_print():
    code = (
        "x = 2  # a remark\n"
        "print(x)  # 2\n"
        "for i in range(2):\n"
        "    print(i)\n"
        "# 0\n"
        "# 1\n"
        "\n"
        "y = x\n"
        "# a remark below a statement that prints nothing\n"
        "print(y)\n"
        "# a remark above the next statement\n"
        "print(y)  # 2\n"
    )
    assert [claim for _, claim in claims(code)] == [None, "2", "0\n1", None, None, "2"]


@pytest.mark.parametrize("code", [
    "print(1 + 1)  # 3",
    "print([1, 2])\n# [1, 2, 3]",
    "print('ab')  # a...c",
    "print()  # something",
])
def test_a_false_claim_fails(code):
    with pytest.raises(AssertionError, match="the example claims"):
        run_example(Example("kgpt2/made_up.py::f", code))


@pytest.mark.parametrize("code", [
    "print('a  b')  # a b",
    "print([[1.0, -2.0]])\n# [[1.0,\n#   -2.0]]",
    "print('x = 70.0 tok/s, 50% of it')  # ... = 70.0 tok/s, ... of it",
])
def test_a_true_claim_passes_up_to_whitespace_and_ellipsis(code):
    run_example(Example("kgpt2/made_up.py::f", code))
