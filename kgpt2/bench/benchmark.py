"""`kgpt2.bench`: generation and training speed, on one or more Keras backends.

One call measures everything issue 6 asks for and returns a report dict:
the settings, the machine, every measurement as a row (`results`), and,
when asked, the HF transformers peer's rows measured in the same session.
Backends other than the running one are measured in a subprocess, because
Keras picks its backend once per process.
"""

import sys

from kgpt2.bench.generation import IMPLS
from kgpt2.bench.generation import SAMPLER_OPTIONS
from kgpt2.errors import InputError
from kgpt2.errors import MissingFileError

SUPPORTED_BACKENDS = ("jax", "tensorflow")
DEFAULT_IMPLS = ("kgpt2",)
# Precisions the model can be loaded in besides its own (see `kgpt2.load`).
DTYPES = ("float32", "bfloat16", "float16")


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{name} must be an integer >= {low}, got {value!r}.")


def _check_choices(name, values, allowed):
    values = list(values)
    if not values:
        raise InputError(f"{name} is empty; choose one or more of {', '.join(allowed)}.")
    for value in values:
        if value not in allowed:
            raise InputError(f"Unknown {name[:-1]} {value!r}; choose from {', '.join(allowed)}.")
    if len(set(values)) != len(values):
        raise InputError(f"{name} lists a value twice: {values}.")
    return values


def check_settings(settings):
    """Validate benchmark settings before anything slow runs; return them.

    Raises:
        ValueError: naming the setting, the value and what is allowed.

    Example:
    ```python
    from kgpt2.bench.benchmark import check_settings

    check_settings(dict(preset="gpt2_tiny_random", batch_sizes=[1], samplers=["greedy"],
                        impls=["keras_hub"], prompt_length=4, new_tokens=8, calls=3,
                        train=None, train_steps=7, train_warmup_steps=2))
    ```
    """
    from kgpt2.presets import MAX_SEQUENCE_LENGTH

    settings = dict(settings)
    settings["batch_sizes"] = list(settings["batch_sizes"])
    if not settings["batch_sizes"]:
        raise InputError("batch_sizes is empty; give at least one batch size, e.g. 1,8.")
    for batch_size in settings["batch_sizes"]:
        _check_int("each batch size", batch_size, 1)
    settings["samplers"] = _check_choices("samplers", settings["samplers"], list(SAMPLER_OPTIONS))
    settings["impls"] = _check_choices("impls", settings["impls"], IMPLS)
    settings["dtype"] = settings.get("dtype")
    if settings["dtype"] is not None and settings["dtype"] not in DTYPES:
        raise InputError(
            f"dtype {settings['dtype']!r} is not supported; choose from "
            f"{', '.join(DTYPES)} (or None: the preset's own)."
        )
    _check_int("prompt_length", settings["prompt_length"], 1)
    _check_int("new_tokens", settings["new_tokens"], 1)
    _check_int("calls", settings["calls"], 2)
    total = settings["prompt_length"] + settings["new_tokens"]
    if total > MAX_SEQUENCE_LENGTH:
        raise InputError(
            f"prompt_length + new_tokens = {total} exceeds GPT-2's "
            f"{MAX_SEQUENCE_LENGTH} positions."
        )
    if settings["train"] is not None:
        train = list(settings["train"])
        if len(train) != 2:
            raise InputError(f"train must be (batch_size, sequence_length), got {settings['train']!r}.")
        _check_int("train batch size", train[0], 1)
        _check_int("train sequence length", train[1], 2)
        if train[1] > MAX_SEQUENCE_LENGTH:
            raise InputError(
                f"train sequence length {train[1]} exceeds GPT-2's {MAX_SEQUENCE_LENGTH} positions."
            )
        settings["train"] = train
        _check_int("train_warmup_steps", settings["train_warmup_steps"], 1)
        _check_int("train_steps", settings["train_steps"], settings["train_warmup_steps"] + 1)
    return settings


def measure_backend(settings, print_fn=print):
    """Measure generation (and training) with the running Keras backend.

    `settings` are those `check_settings` accepts. Returns the part of a
    report that belongs to this backend: `machine`, `model` and `results`.
    """
    import keras

    import kgpt2
    from kgpt2.bench.generation import bench_generation
    from kgpt2.bench.machine import machine_info
    from kgpt2.bench.model import model_info
    from kgpt2.bench.training import bench_training

    settings = check_settings(settings)
    backend = keras.config.backend()
    print_fn(f"Backend {backend}: measuring the machine and loading {settings['preset']}")
    machine = machine_info()
    options = {} if settings["dtype"] is None else {"dtype": settings["dtype"]}
    lm = kgpt2.load(settings["preset"], **options)
    results = bench_generation(
        lm,
        impls=settings["impls"],
        samplers=settings["samplers"],
        batch_sizes=settings["batch_sizes"],
        prompt_length=settings["prompt_length"],
        new_tokens=settings["new_tokens"],
        calls=settings["calls"],
        print_fn=print_fn,
    )
    if settings["train"] is not None:
        batch_size, sequence_length = settings["train"]
        results.append(
            bench_training(
                lm,
                batch_size=batch_size,
                sequence_length=sequence_length,
                steps=settings["train_steps"],
                warmup_steps=settings["train_warmup_steps"],
                print_fn=print_fn,
            )
        )
    return {"machine": machine, "model": model_info(lm, settings["preset"]), "results": results}


def bench(
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
    backends=None,
    rounds=1,
    compare_hf=None,
    json_path=None,
    plot_path=None,
    print_fn=print,
):
    """Benchmark generation and training speed; print a table, return a report.

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
        backends: Keras backends to measure (default: the running one);
            others run in a subprocess with `KERAS_BACKEND` set.
        rounds: measure every backend (and the HF peer) in turn this many
            times; with more than one, every round runs in fresh processes
            and the summary pools all rounds (see `kgpt2.bench.rounds`), so
            that comparisons survive a machine whose load changes.
        compare_hf: `(python, script)`: also run the HF transformers peer
            script (`hf_generate.py`) with that interpreter, same settings.
        json_path, plot_path: where to write the report as JSON and the
            tokens/s chart as PNG (written only after every measurement).
        print_fn: where progress lines and the final table go.

    Returns:
        The report dict: `settings`, `machine`, `backends` (per backend:
        `machine` and `model`), `results` (every row of every round, each
        tagged with its `backend`, `impl` and `round`), `summary` (one row
        per measurement, rounds pooled: what the table and chart show) and,
        with `compare_hf`, `hf_env`.

    Example:
    ```python
    import kgpt2

    report = kgpt2.bench("gpt2_tiny_random", batch_sizes=[1], samplers=["greedy"],
                         new_tokens=4, train=(2, 16), train_steps=3,
                         train_warmup_steps=1, print_fn=lambda *a: None)
    row = report["results"][0]
    print(row["tokens"] / row["steady_call_s"] == row["steady_tok_per_s"])  # True
    print(report["summary"][0]["steady_tok_per_s"] == row["steady_tok_per_s"])  # True
    ```
    """
    import keras

    from kgpt2.bench.backends import measure_in_subprocess
    from kgpt2.bench.report import check_output_path
    from kgpt2.bench.report import format_report
    from kgpt2.bench.report import write_json
    from kgpt2.bench.rounds import combine_rounds

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
        )
    )
    current = keras.config.backend()
    backends = _check_choices("backends", backends or [current], SUPPORTED_BACKENDS)
    hf_python, hf_script = _check_compare_hf(compare_hf, settings)
    _check_int("rounds", rounds, 1)
    for path in (json_path, plot_path):
        check_output_path(path)

    report = {
        "settings": {**settings, "backends": backends, "rounds": rounds},
        "machine": None,
        "backends": {},
        "results": [],
    }
    for round_index in range(rounds):
        if rounds > 1:
            print_fn(f"Round {round_index + 1} of {rounds}")
        for backend in backends:
            # One round in this process would reuse its compiled programs in
            # the next: with several rounds, every one gets fresh processes.
            if backend == current and rounds == 1:
                part = measure_backend(settings, print_fn=print_fn)
            else:
                sys.stdout.flush()
                part = measure_in_subprocess(backend, settings, print_fn=print_fn)
            _add_part(report, backend, part, round_index)
        if hf_script is not None:
            from kgpt2.bench.hf import run_hf_peer

            print_fn(f"HF transformers peer: {hf_python} {hf_script}")
            hf = run_hf_peer(hf_python, hf_script, settings, print_fn=print_fn)
            report["hf_env"] = hf["env"]
            report["results"].extend(dict(row, round=round_index) for row in hf["results"])
    report["summary"] = combine_rounds(report["results"])

    print_fn("")
    print_fn(format_report(report))
    if json_path is not None:
        write_json(report, json_path)
        print_fn(f"Wrote {json_path}")
    if plot_path is not None:
        from kgpt2.bench.plot import plot_report

        plot_report(report, plot_path)
        print_fn(f"Wrote {plot_path}")
    return report


def _add_part(report, backend, part, round_index):
    """Add one backend's measurements of one round to `report`."""
    report["machine"] = report["machine"] or part["machine"]
    if backend not in report["backends"]:
        report["backends"][backend] = {"machine": part["machine"], "model": part["model"]}
    else:
        # The ceiling uses the best bandwidth any moment of the session had.
        known = report["backends"][backend]["machine"]
        known["matvec_bandwidth_gb_s"] = max(
            known["matvec_bandwidth_gb_s"], part["machine"]["matvec_bandwidth_gb_s"]
        )
    report["results"].extend(dict(row, round=round_index) for row in part["results"])


def _check_compare_hf(compare_hf, settings):
    import os

    if compare_hf is None:
        return None, None
    if isinstance(compare_hf, (str, os.PathLike)) or len(compare_hf) != 2:
        raise InputError(
            "compare_hf must be (python, script): the interpreter that has torch "
            "and transformers, and the path of hf_generate.py."
        )
    python, script = (str(part) for part in compare_hf)
    if not os.path.isfile(python) or not os.access(python, os.X_OK):
        raise MissingFileError(f"compare_hf: '{python}' is not an executable Python interpreter.")
    if not os.path.isfile(script):
        raise MissingFileError(f"compare_hf: the HF peer script '{script}' does not exist.")
    if settings["prompt_length"] != 4:
        raise InputError(
            "compare_hf needs prompt_length=4: the HF peer script always uses the "
            f"4-token prompt, got prompt_length={settings['prompt_length']}."
        )
    return python, script
