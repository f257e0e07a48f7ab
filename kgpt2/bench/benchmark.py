"""`kgpt2.bench.run`: generation and training speed, on one or more Keras backends.

One call measures every (sampler, batch size, generation path) and a
training step, and returns a `BenchReport`: the settings, the machine, every
measurement as a row, the rounds pooled into a summary and, when asked, the
HF transformers peer's rows measured in the same session. Backends other
than the running one are measured in a child process, because Keras picks
its backend once per process.
"""

import logging
import subprocess

import keras

from kgpt2.bench.backends import measure_in_subprocess
from kgpt2.bench.flops import training_flop_per_token
from kgpt2.bench.flops import with_utilisation
from kgpt2.bench.hf import check_compare_hf
from kgpt2.bench.hf import run_hf_peer
from kgpt2.bench.measure import measure_backend
from kgpt2.bench.peak import torch_matmul_peak
from kgpt2.bench.peak import training_shapes
from kgpt2.bench.plot import plot_report
from kgpt2.bench.report import BenchReport
from kgpt2.bench.report import check_output_path
from kgpt2.bench.report import write_json
from kgpt2.bench.rounds import combine_rounds
from kgpt2.bench.settings import DEFAULT_IMPLS
from kgpt2.bench.settings import SUPPORTED_BACKENDS
from kgpt2.bench.settings import check_choices
from kgpt2.bench.settings import check_settings
from kgpt2.checks import check_integer

logger = logging.getLogger("kgpt2")


def run(
    preset="gpt2_base_random",
    batch_sizes=(1, 8),
    samplers=("greedy", "top_k", "top_p"),
    impls=DEFAULT_IMPLS,
    prompt_length=4,
    new_tokens=128,
    calls=3,
    dtype=None,
    train=(8, 128),
    train_steps=7,
    train_warmup_steps=2,
    mixed_precision=False,
    backends=None,
    rounds=1,
    compare_hf=None,
    json_path=None,
    plot_path=None,
):
    """Benchmark generation and training speed; return a `BenchReport`.

    Progress lines go to the "kgpt2" logger; `kgpt2 bench` prints the
    report as tables.

    Args:
        preset: any name `kgpt2.load` accepts; `gpt2_base_random` has GPT-2
            124M's exact shape, so its speed is the real model's.
        batch_sizes: generation batch sizes.
        samplers: from "greedy", "top_k" (k=5), "top_p" (p=0.9).
        impls: generation paths: "kgpt2" (`kgpt2.generation`) and/or
            "keras_hub" (plain `GPT2CausalLM.generate` on token ids). Several
            are measured call by call in turn, so their ratio survives noise.
        prompt_length: prompt tokens ("The quick brown fox" ids, repeated).
        new_tokens: generated tokens per sequence, no early stop.
        calls: generation calls per measurement: one first call (compilation
            included), then `calls - 1` steady ones.
        dtype: None (the preset's own, float32 for GPT-2) or a lower
            precision ("bfloat16", "float16") to load the model in. Lower
            precision changes outputs: compare its speed with float32
            separately, and its outputs with `benchmarks/precision_effect.py`.
        train: `(batch_size, sequence_length)` of the training measurement,
            or None to skip it.
        train_steps, train_warmup_steps: training steps in all, and how many
            are left out of the steady median.
        mixed_precision: train with bfloat16 products and float32 weights
            (`kgpt2.compile_lm(..., mixed_precision=True)`) instead of float32.
            The HF peer trains in float32 either way.
        backends: Keras backends to measure (default: the running one);
            others run in a child process with `KERAS_BACKEND` set.
        rounds: measure every backend (and the HF peer) in turn this many
            times; with more than one, every round runs in fresh processes
            and the summary pools all rounds (see `kgpt2.bench.rounds`), so
            that comparisons survive a machine whose load changes.
        compare_hf: `(python, script)`: also run the HF transformers peer
            script (`hf_generate.py`) with that interpreter, same settings.
        json_path, plot_path: where to write the report as JSON and the
            tokens/s chart as PNG (checked before measuring, written after).

    Returns:
        A `BenchReport` (`.to_dict()` gives the JSON file's content).

    Raises:
        kgpt2.Error: a bad setting or output path, before anything is measured.
        RuntimeError: a backend's child process or the HF peer failed.

    Example:
    ```python
    import kgpt2

    # train=(batch_size, sequence_length) also measures training steps.
    report = kgpt2.bench.run("gpt2_tiny_random", batch_sizes=[1], samplers=["greedy"],
                             new_tokens=4, train=None)
    row = report.results[0]
    print(row["tokens"] / row["steady_call_s"] == row["steady_tok_per_s"])  # True
    print(report.summary[0]["steady_tok_per_s"] == row["steady_tok_per_s"])  # True
    ```
    """
    settings = check_settings(
        dict(
            preset=str(preset),
            batch_sizes=batch_sizes,
            samplers=samplers,
            impls=impls,
            prompt_length=prompt_length,
            new_tokens=new_tokens,
            calls=calls,
            dtype=dtype,
            train=train,
            train_steps=train_steps,
            train_warmup_steps=train_warmup_steps,
            mixed_precision=mixed_precision,
        )
    )
    current = keras.config.backend()
    backends = check_choices("backends", backends or [current], SUPPORTED_BACKENDS)
    hf_python, hf_script = check_compare_hf(compare_hf, settings)
    check_integer(None, "rounds", rounds, minimum=1)
    for path in (json_path, plot_path):
        check_output_path(path)

    parts, results, hf_env = {}, [], None
    for round_index in range(rounds):
        if rounds > 1:
            logger.info("Round %d of %d", round_index + 1, rounds)
        for backend in backends:
            # One round in this process would reuse its compiled programs in
            # the next: with several rounds, every one gets fresh processes.
            if backend == current and rounds == 1:
                part = measure_backend(settings)
            else:
                part = measure_in_subprocess(backend, settings)
            _add_part(parts, backend, part)
            results.extend(dict(row, round=round_index) for row in part["results"])
        if hf_script is not None:
            logger.info("HF transformers peer: %s %s", hf_python, hf_script)
            hf = run_hf_peer(hf_python, hf_script, settings)
            hf_env = _with_torch_peak(hf["env"], hf_env, parts[backends[0]]["model"], settings)
            results.extend(dict(row, round=round_index) for row in hf["results"])

    peaks = {backend: part["matmul_peak"] for backend, part in parts.items()}
    if hf_env is not None:
        peaks["torch"] = hf_env.get("matmul_peak")
    model = parts[backends[0]]["model"]
    report = BenchReport(
        settings={**settings, "backends": backends, "rounds": rounds},
        machine=parts[backends[0]]["machine"],
        backends=parts,
        results=_with_utilisation(results, model, peaks),
        summary=_with_utilisation(combine_rounds(results), model, peaks),
        hf_env=hf_env,
    )
    if json_path is not None:
        write_json(report, json_path)
    if plot_path is not None:
        plot_report(report, plot_path)
    return report


def _best_peak(known, new):
    """The higher of two `matmul_peak` results (either may be None)."""
    candidates = [peak for peak in (known, new) if peak]
    return max(candidates, key=lambda peak: peak["peak_gflop_s"], default=None)


def _with_torch_peak(env, known_env, model, settings):
    """The peer's env, with PyTorch's float32 peak at the step's shapes (best of the rounds)."""
    if settings["train"] is None:
        return env
    batch_size, sequence_length = settings["train"]
    shapes = training_shapes(batch_size * sequence_length, model["hidden_dim"],
                             model["intermediate_dim"], model["vocabulary_size"], backward=False)
    known = (known_env or {}).get("matmul_peak")
    try:
        (peak,) = torch_matmul_peak(env["python"], ["float32"], shapes, repeats=2)
    except (OSError, subprocess.CalledProcessError, ValueError) as error:
        # The peer ran, so its figures stand; only its MFU goes missing.
        cause = (getattr(error, "stderr", None) or str(error)).strip().splitlines()
        logger.warning("  peak     torch      not measured (%s): the HF row has no MFU",
                       cause[-1] if cause else type(error).__name__)
        return {**env, "matmul_peak": known}
    logger.info("  peak     torch      float32 matmul at the step's shapes: %.1f GFLOP/s (%s)",
                peak["peak_gflop_s"], peak["library"])
    return {**env, "matmul_peak": _best_peak(known, peak)}


def _with_utilisation(rows, model, peaks):
    """Training rows get model FLOP/s and MFU against their own library's float32 peak."""
    result = []
    for row in rows:
        if row["what"] == "train":
            per_token = training_flop_per_token(model["params"], model["layers"],
                                                model["hidden_dim"], row["sequence_length"])
            peak = peaks.get(row["backend"])
            row = with_utilisation(row, per_token, peak["peak_gflop_s"] if peak else None)
        result.append(row)
    return result


def _add_part(parts, backend, part):
    """Keep one backend's machine, model and matmul peak, across rounds."""
    if backend not in parts:
        parts[backend] = {"machine": part["machine"], "model": part["model"],
                          "matmul_peak": part.get("matmul_peak")}
        return
    parts[backend]["matmul_peak"] = _best_peak(parts[backend]["matmul_peak"],
                                               part.get("matmul_peak"))
    # The ceiling uses the best bandwidth any moment of the session had.
    known = parts[backend]["machine"]
    known["matvec_bandwidth_gb_s"] = max(
        known["matvec_bandwidth_gb_s"], part["machine"]["matvec_bandwidth_gb_s"]
    )
