"""`kgpt2 bench` / `kgpt2.bench.run`: runs, writes JSON and PNG, figures consistent.

One run of `kgpt2 bench` with its default options (on the tiny preset) is the
smoke test, and every check of the report (JSON, tables, PNG, FLOPs) reads
that one run; report logic that needs other figures builds a `BenchReport`
from data. Measurement sweeps are scripts in benchmarks/.

Speeds are never asserted (a shared machine makes them meaningless in a
test); what is asserted is that every figure is positive and that each
tokens/s is the tokens divided by the seconds it reports.
"""

import contextlib
import io
import json
import math
import statistics

import pytest

from kgpt2.cli import main

TINY = ["--preset", "gpt2_tiny_random", "--new-tokens", "3", "--calls", "3"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """The one `kgpt2 bench` run: default options on the tiny preset, plus
    JSON and PNG output (batch sizes 1,8, all three samplers, 128 new tokens,
    3 calls, training 8 x 128 for 7 steps)."""
    folder = tmp_path_factory.mktemp("bench")
    json_path, png_path = folder / "report.json", folder / "report.png"
    argv = ["bench", "--preset", "gpt2_tiny_random",
            "--json", str(json_path), "--plot", str(png_path)]
    terminal = io.StringIO()
    with contextlib.redirect_stdout(terminal):
        status = main(argv)
    return status, json_path, png_path, terminal.getvalue()


def _check_consistent(row):
    if row["what"] == "generate":
        seconds = row["call_s"]
        assert row["tokens"] == row["batch"] * row["new_tokens"]
        assert row["first_call_s"] == seconds[0]
        assert row["steady_call_s"] == statistics.median(seconds[1:])
        assert row["best_call_s"] == min(seconds[1:])
        pairs = [("first_tok_per_s", "first_call_s"), ("steady_tok_per_s", "steady_call_s"),
                 ("best_tok_per_s", "best_call_s")]
    else:
        seconds = row["step_s"]
        assert row["tokens"] == row["batch"] * row["sequence_length"]
        assert row["first_step_s"] == seconds[0]
        pairs = [("steady_tok_per_s", "steady_step_s")]
    assert all(s > 0 for s in seconds)
    for speed, time_key in pairs:
        assert row[speed] > 0
        assert math.isclose(row[speed], row["tokens"] / row[time_key], rel_tol=1e-12)


@pytest.mark.slow
def test_cli_writes_a_complete_json_report(cli_run):
    status, json_path, _, _ = cli_run
    assert status == 0
    report = json.loads(json_path.read_text("utf-8"))
    machine = report["machine"]
    assert machine["cpu"] and machine["cores"] >= 1 and machine["backend"] == "jax"
    for package in ("keras", "keras-hub", "jax", "tensorflow"):
        assert machine["versions"][package]
    assert machine["matvec_bandwidth_gb_s"] > 0
    generation = [row for row in report["results"] if row["what"] == "generate"]
    training = [row for row in report["results"] if row["what"] == "train"]
    measured = sorted((row["impl"], row["sampler"], row["batch"]) for row in generation)
    assert measured == [("kgpt2", sampler, batch) for sampler in ("greedy", "top_k", "top_p")
                        for batch in (1, 8)]
    assert all(len(row["call_s"]) == 3 and row["prompt_length"] == 4
               and row["new_tokens"] == 128 for row in generation)
    assert [(row["impl"], row["batch"], row["sequence_length"], len(row["step_s"]))
            for row in training] == [("kgpt2", 8, 128, 7)]
    # CPU seconds per step are kept beside wall-clock seconds.
    (train,) = training
    assert len(train["cpu_step_s"]) == 7 and all(s > 0 for s in train["cpu_step_s"])
    assert math.isclose(train["steady_tok_per_cpu_s"],
                        train["tokens"] / statistics.median(train["cpu_step_s"][2:]))
    model = report["backends"]["jax"]["model"]
    assert model["preset"] == "gpt2_tiny_random" and model["weight_bytes"] == 4 * model["params"]


@pytest.mark.slow
def test_every_figure_is_positive_and_consistent(cli_run):
    _, json_path, _, _ = cli_run
    report = json.loads(json_path.read_text("utf-8"))
    assert len(report["results"]) == len(report["summary"]) == 7
    for row in report["results"] + report["summary"]:
        _check_consistent(row)
    # One round: the summary shows the same figures as the measurement.
    for measured, summary in zip(report["results"], report["summary"]):
        assert measured["steady_tok_per_s"] == summary["steady_tok_per_s"]


@pytest.mark.slow
def test_training_flops_and_mfu_follow_tokens_per_second_and_parameters(cli_run, tiny_lm):
    _, json_path, _, terminal = cli_run
    report = json.loads(json_path.read_text("utf-8"))
    model, peak = report["backends"]["jax"]["model"], report["backends"]["jax"]["matmul_peak"]
    assert model["params"] == tiny_lm.backbone.count_params()
    assert model["layers"] == tiny_lm.backbone.num_layers
    assert peak["dtype"] == "float32" and peak["library"].startswith("XLA")
    assert peak["peak_gflop_s"] == max(rate["gflop_s"] for rate in peak["rates"]) > 0
    # The step's forward products at 8 x 128 tokens: q/k/v first, logits last.
    hidden, vocabulary = model["hidden_dim"], model["vocabulary_size"]
    assert peak["rates"][0]["shape"] == [1024, hidden, 3 * hidden]
    assert peak["rates"][-1]["shape"] == [1024, hidden, vocabulary]
    (train,) = [row for row in report["summary"] if row["what"] == "train"]
    assert train["precision"] == "float32"
    per_token = 6 * model["params"] + 12 * model["layers"] * hidden * 128
    assert train["flop_per_token"] == per_token
    assert math.isclose(train["model_gflop_s"], per_token * train["steady_tok_per_s"] / 1e9,
                        rel_tol=1e-12)
    assert train["peak_gflop_s"] == peak["peak_gflop_s"]
    assert math.isclose(train["mfu"], train["model_gflop_s"] / peak["peak_gflop_s"],
                        rel_tol=1e-12)
    assert f"{100 * train['mfu']:.0f}%" in terminal and "MFU" in terminal


def test_matmul_peak_times_each_shape_with_either_library():
    from kgpt2.bench.peak import matmul_peak
    from kgpt2.bench.peak import training_shapes

    shapes = training_shapes(tokens=8, hidden=4, intermediate=16, vocabulary=32)
    # Forward, then each one's input- and weight-gradient products, once each.
    assert shapes[:5] == [(8, 4, 12), (8, 4, 4), (8, 4, 16), (8, 16, 4), (8, 4, 32)]
    assert (8, 12, 4) in shapes and (4, 8, 12) in shapes and len(set(shapes)) == len(shapes)
    for library in ("jax", "tensorflow"):
        for dtype in ("float32", "bfloat16"):
            peak = matmul_peak(library, dtype, shapes[:2], repeats=1)
            assert [rate["shape"] for rate in peak["rates"]] == [[8, 4, 12], [8, 4, 4]]
            assert peak["peak_gflop_s"] == max(rate["gflop_s"] for rate in peak["rates"]) > 0


@pytest.mark.slow
def test_cli_writes_a_png(cli_run):
    import matplotlib.image

    _, _, png_path, _ = cli_run
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(str(png_path)).shape
    assert width > height > 100


@pytest.mark.slow
def test_cli_prints_the_table(cli_run):
    _, json_path, png_path, terminal = cli_run
    assert "steady tok/s" in terminal and "first/steady" in terminal
    # The tiny preset's 14 MB stay in cache: no bandwidth ceiling applies.
    assert "No batch-1 bandwidth ceiling: 14 MB of weights" in terminal
    report = json.loads(json_path.read_text("utf-8"))
    for row in report["results"]:
        if row["what"] == "generate":
            assert f"{row['steady_tok_per_s']:.1f}" in terminal
    assert f"Wrote {json_path}" in terminal and f"Wrote {png_path}" in terminal


def test_row_summaries_follow_the_protocol():
    from kgpt2.bench.generation import generation_row
    from kgpt2.bench.training import training_row

    row = generation_row([5.0, 2.0, 4.0, 1.0], batch=8, new_tokens=10, impl="x")
    assert row["steady_call_s"] == 2.0  # median of the calls after the first
    assert row["best_call_s"] == 1.0
    assert row["first_over_steady"] == 2.5
    _check_consistent(row)
    row = training_row([9.0, 3.0, 2.0, 1.0, 4.0], warmup_steps=2, batch=2, sequence_length=5)
    assert row["steady_step_s"] == 2.0  # median of the steps after warm-up
    _check_consistent(row)


def test_rounds_pool_steady_calls_and_keep_later_first_calls():
    from kgpt2.bench.generation import generation_row
    from kgpt2.bench.rounds import combine_rounds
    from kgpt2.bench.training import training_row

    fields = dict(backend="jax", impl="kgpt2", sampler="greedy", prompt_length=4)
    rows = [
        dict(generation_row([9.0, 4.0, 5.0], batch=2, new_tokens=8, **fields), round=0),
        dict(generation_row([2.0, 1.0, 3.0], batch=2, new_tokens=8, **fields), round=1),
        dict(training_row([7.0, 6.0, 2.0, 4.0], warmup_steps=2, batch=2, sequence_length=4,
                          backend="jax", impl="kgpt2"), round=0),
        dict(training_row([5.0, 9.0, 1.0, 3.0], warmup_steps=2, batch=2, sequence_length=4,
                          backend="jax", impl="kgpt2"), round=1),
    ]
    generate, train = combine_rounds(rows)
    assert generate["call_s"] == [9.0, 4.0, 5.0, 1.0, 3.0]
    assert generate["first_call_s"] == 9.0 and generate["later_first_call_s"] == [2.0]
    assert generate["steady_call_s"] == 3.5 and generate["best_call_s"] == 1.0
    assert train["step_s"] == [7.0, 2.0, 4.0, 1.0, 3.0]
    assert train["steady_step_s"] == 2.5 and generate["rounds"] == train["rounds"] == 2
    for row in (generate, train):
        _check_consistent(row)


def test_batch_one_ceiling_is_bandwidth_over_weight_bytes():
    from kgpt2.bench.report import BenchReport
    from kgpt2.bench.report import batch_one_ceiling

    def report(bandwidths, weight_bytes):
        return BenchReport(
            settings={}, machine={}, results=[],
            backends={
                backend: {"machine": {"matvec_bandwidth_gb_s": bandwidth},
                          "model": {"weight_bytes": weight_bytes, "dtype": "float32"}}
                for backend, bandwidth in bandwidths.items()
            },
            summary=[{"what": "generate", "backend": "jax", "impl": "kgpt2",
                      "sampler": "greedy", "batch": 1, "best_tok_per_s": 35.0}],
        )

    # 35 GB/s over 500 MB is 70 tok/s; the best backend's bandwidth counts.
    ceiling = batch_one_ceiling(report({"jax": 35.0, "tensorflow": 20.0}, 500e6))
    assert ceiling.bandwidth_gb_s == 35.0 and ceiling.tok_per_s == 70.0
    assert ceiling.shares == (("jax/kgpt2", "greedy", 35.0, 0.5),)
    # Weights that fit in the CPU caches have no bandwidth ceiling.
    assert batch_one_ceiling(report({"jax": 35.0}, 50e6)).tok_per_s is None


@pytest.mark.slow
def test_report_is_a_dataclass_that_round_trips_through_json(cli_run):
    from kgpt2.bench.report import BenchReport

    _, json_path, _, _ = cli_run
    written = json.loads(json_path.read_text("utf-8"))
    report = BenchReport(**written)
    assert report.to_dict() == written
    assert [row["what"] for row in report.rows("train")] == ["train"]
    assert report.hf_env is None


def test_package_modules_are_reachable_as_attributes():
    import kgpt2

    assert kgpt2.bench.report.BenchReport is kgpt2.bench.BenchReport
    assert callable(kgpt2.bench.run) and kgpt2.bench.settings.SUPPORTED_BACKENDS


def test_prompt_is_the_quick_brown_fox_repeated_or_cut():
    from kgpt2.bench.generation import prompt_token_ids

    assert prompt_token_ids(4) == [464, 2068, 7586, 21831]
    assert prompt_token_ids(2) == [464, 2068]
    assert prompt_token_ids(9) == [464, 2068, 7586, 21831] * 2 + [464]


@pytest.mark.slow
def test_both_impls_generate_the_same_greedy_tokens(tiny_lm):
    # The benchmark compares their speed: they must do the same work.
    import numpy as np

    from kgpt2.bench.generation import generation_call
    from kgpt2.bench.generation import make_sampler
    from kgpt2.bench.generation import prompt_token_ids

    prompt = np.array([prompt_token_ids(4)] * 2)
    outputs = [
        generation_call(tiny_lm, impl, make_sampler("greedy", impl), prompt, max_length=12)()
        for impl in ("kgpt2", "keras_hub")
    ]
    assert outputs[0].shape == (2, 12)
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0][:, :4], prompt)


def test_samplers_match_the_hf_peer_options():
    from kgpt2.bench.generation import make_sampler

    for impl, module in [("kgpt2", "kgpt2.samplers"), ("keras_hub", "keras_hub")]:
        assert make_sampler("top_k", impl).k == 5
        assert make_sampler("top_p", impl).p == 0.9
        greedy = make_sampler("greedy", impl)
        assert type(greedy).__name__ == "GreedySampler"
        assert type(greedy).__module__.startswith(module)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--batch-sizes", "1,x"], "--batch-sizes: expected comma-separated integers"),
        (["--batch-sizes", "0"], "--batch-sizes: expected integers >= 1"),
        (["--train", "8"], "--train: expected BATCH,LENGTH"),
    ],
)
def test_malformed_options_are_usage_errors(options, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", *TINY, *options])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "options, message",
    [
        (["--samplers", "beam"], "Unknown sampler 'beam'; choose from greedy, top_k, top_p"),
        (["--impl", "torch"], "Unknown impl 'torch'; choose from kgpt2, keras_hub"),
        (["--backends", "numpy"], "Unknown backend 'numpy'; choose from jax, tensorflow"),
        (["--new-tokens", "0"], "--new-tokens must be an integer >= 1, got 0"),
        (["--calls", "1"], "--calls must be an integer >= 2, got 1"),
        (["--prompt-length", "1000", "--new-tokens", "100"], "= 1100 exceeds GPT-2's 1024"),
        (["--train", "2,2000"], "train sequence length 2000 exceeds GPT-2's 1024"),
        (["--train", "2,8", "--train-steps", "2"], "--train-steps must be an integer >= 3, got 2"),
        (["--json", "/nonexistent/dir/r.json"], "its folder '/nonexistent/dir' does not exist"),
        (["--compare-hf", "/nonexistent/python", "hf.py"], "'/nonexistent/python' is not an executable"),
        (["--preset", "gpt3_huge"], "Unknown preset 'gpt3_huge'"),
    ],
)
def test_bad_values_are_clear_errors(options, message, capsys, tmp_path):
    status = main(["bench", *TINY, "--impl", "keras_hub", "--batch-sizes", "1",
                   "--samplers", "greedy", "--train", "none", *options,
                   *([] if "--json" in options else ["--json", str(tmp_path / "r.json")])])
    assert status == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress lines
    assert error.startswith("kgpt2 bench: error: ") and message in error
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_dtype_loads_the_measured_model_in_that_precision(tmp_path):
    json_path = tmp_path / "r.json"
    terminal = io.StringIO()
    with contextlib.redirect_stdout(terminal):
        status = main(["bench", *TINY, "--batch-sizes", "1", "--samplers", "greedy",
                       "--train", "none", "--dtype", "bfloat16", "--json", str(json_path)])
    assert status == 0
    report = json.loads(json_path.read_text())
    assert report["settings"]["dtype"] == "bfloat16"
    (part,) = report["backends"].values()
    assert part["model"]["dtype"] == "bfloat16"
    # Half the bytes of the float32 model: what the bandwidth ceiling divides by.
    assert part["model"]["weight_bytes"] == 2 * part["model"]["params"]
    assert "bfloat16 weights" in terminal.getvalue()
    _check_consistent(report["results"][0])
