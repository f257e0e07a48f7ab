"""`kgpt2 bench` across Keras backends (subprocess) and beside the HF peer."""

import contextlib
import io
import json
import math
import sys

import pytest

from kgpt2.cli import main

# The default impl: kgpt2's own generation path.
TINY = ["--preset", "gpt2_tiny_random", "--new-tokens", "3", "--batch-sizes", "1",
        "--samplers", "greedy"]


@pytest.mark.slow
def test_tensorflow_runs_in_a_subprocess_beside_jax(tmp_path, capfd):
    # ~25 s: the only test that runs kgpt2 on the TensorFlow Keras backend,
    # which `kgpt2 bench --backends` supports.
    json_path = tmp_path / "report.json"
    status = main(["bench", *TINY, "--train", "2,8", "--train-steps", "3",
                   "--backends", "jax,tensorflow", "--json", str(json_path)])
    assert status == 0
    # The child's progress shows; its libraries' log lines do not.
    printed = capfd.readouterr()
    assert "Backend tensorflow: measuring the machine" in printed.out
    assert "Unable to initialize backend" not in printed.out + printed.err
    report = json.loads(json_path.read_text("utf-8"))
    assert report["settings"]["backends"] == ["jax", "tensorflow"]
    for backend in ("jax", "tensorflow"):
        assert report["backends"][backend]["machine"]["backend"] == backend
        rows = [row for row in report["results"] if row["backend"] == backend]
        assert sorted((row["what"], row["impl"]) for row in rows) == [
            ("generate", "kgpt2"), ("train", "kgpt2")]
        assert all(row["steady_tok_per_s"] > 0 for row in rows)


@pytest.mark.slow
def test_a_failing_backend_subprocess_names_its_error():
    from kgpt2.bench.backends import measure_in_subprocess

    settings = dict(preset="no_such_preset", batch_sizes=[1], samplers=["greedy"],
                    impls=["kgpt2"], prompt_length=4, new_tokens=3, calls=2,
                    train=None, train_steps=3, train_warmup_steps=1)
    with pytest.raises(RuntimeError, match=r"subprocess failed \(exit status 1\): .*no_such_preset"):
        measure_in_subprocess("jax", settings)


@pytest.mark.slow
def test_compare_hf_in_rounds_pools_and_prints_ratios(tmp_path, fixtures_dir, caplog):
    # Two rounds, each in fresh processes, each running the (fake) peer too:
    # ~25 s of CPU (two small jax runs with training); more on a busy machine.
    json_path = tmp_path / "report.json"
    script = fixtures_dir / "hf_peer" / "fake_hf_generate.py"
    terminal = io.StringIO()
    with contextlib.redirect_stdout(terminal):
        status = main(["bench", *TINY, "--batch-sizes", "1,2", "--train", "2,8",
                       "--train-steps", "3", "--calls", "3", "--rounds", "2",
                       "--compare-hf", sys.executable, str(script), "--json", str(json_path)])
    assert status == 0
    report = json.loads(json_path.read_text("utf-8"))
    hf = [row for row in report["summary"] if row["impl"] == "hf-transformers-torch"]
    ours = {(row["what"], row["batch"]): row for row in report["summary"]
            if row["impl"] != "hf-transformers-torch"}
    # The peer got our batch sizes, new tokens and training shape, each round.
    assert sorted((row["what"], row["batch"], row["rounds"]) for row in hf) == [
        ("generate", 1, 2), ("generate", 2, 2), ("train", 2, 2)]
    assert all(row["new_tokens"] == 3 for row in hf if row["what"] == "generate")
    # The peer's versions are recorded: its speed depends on them.
    assert report["hf_env"]["torch"] == report["hf_env"]["transformers"] == "fake"
    assert report["hf_env"]["python"] == sys.executable
    assert "HF peer: torch fake, transformers fake" in terminal.getvalue()
    # The fake peer's Python has no torch: its peak is missing, nothing else.
    assert "not measured (ModuleNotFoundError: No module named 'torch')" in caplog.text
    assert report["hf_env"]["matmul_peak"] is None
    # Our rows pool both rounds' steady calls; round 2's first call is kept apart.
    rounds = [row for row in report["results"] if row["impl"] == "kgpt2"
              and row["what"] == "generate" and row["batch"] == 1]
    assert sorted(row["round"] for row in rounds) == [0, 1]
    mine = ours[("generate", 1)]
    assert len(mine["call_s"]) == 1 + 2 * 2 and mine["first_call_s"] == rounds[0]["call_s"][0]
    assert mine["later_first_call_s"] == [rounds[1]["call_s"][0]]
    assert mine["best_call_s"] == min(s for row in rounds for s in row["call_s"][1:])
    # The side-by-side table divides our best tokens/s by the peer's.
    text = terminal.getvalue()
    for row in hf:
        mine = ours[(row["what"], row["batch"])]
        if row["what"] == "generate":
            assert math.isclose(row["best_tok_per_s"], row["batch"] * 3 / 0.03)
            ratio = mine["best_tok_per_s"] / row["best_tok_per_s"]
            assert f"{mine['best_tok_per_s']:.1f} ({ratio:.2f}x)" in text
        else:
            assert f"{mine['steady_tok_per_s'] / row['steady_tok_per_s']:.2f}x" in text
    assert "ratio to torch/hf-transformers-torch" in text
    assert "new-process first s" in text


def test_compare_hf_needs_the_four_token_prompt(capsys, tmp_path, fixtures_dir):
    script = fixtures_dir / "hf_peer" / "fake_hf_generate.py"
    status = main(["bench", *TINY, "--prompt-length", "8", "--train", "none",
                   "--compare-hf", sys.executable, str(script)])
    assert status == 1
    assert "compare_hf needs prompt_length=4" in capsys.readouterr().err

