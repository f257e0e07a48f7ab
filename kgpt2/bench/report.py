"""A benchmark report as a terminal table and as a JSON file."""

import json
import os

from kgpt2.atomic import atomic_writer
from kgpt2.errors import InputError
from kgpt2.errors import MissingFileError

# Below this, weights may stay in the CPU caches between tokens, and a
# memory-bandwidth ceiling would not apply (server L3 caches reach ~100 MB).
CACHE_RESIDENT_BYTES = 128e6


def check_output_path(path):
    """Fail now, not after minutes of measuring, if `path` cannot be written.

    Example:
    ```python
    from kgpt2.bench.report import check_output_path

    check_output_path("report.json")  # the current folder exists: fine
    ```
    """
    if path is None:
        return
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(f"Output path '{path}' is a directory; give a file name.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise MissingFileError(f"Cannot write '{path}': its folder '{folder}' does not exist.")


def write_json(report, path):
    """Write `report` to `path` as JSON, atomically (never half-written).

    Example:
    ```python
    import json, tempfile
    from kgpt2.bench.report import write_json

    path = tempfile.mkdtemp() + "/report.json"
    write_json({"results": []}, path)
    print(json.load(open(path)))  # {'results': []}
    ```
    """
    with atomic_writer(path) as file:
        json.dump(report, file, indent=2)
        file.write("\n")


def series_name(row):
    """Name the (backend, impl) pair a row belongs to, e.g. "jax/kgpt2"."""
    return f"{row['backend']}/{row['impl']}"


def _table(header, rows):
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(cell).rjust(width) for cell, width in zip(line, widths))
             for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _generation_table(rows, settings):
    later = any(row.get("later_first_call_s") for row in rows)
    header = ["backend", "impl", "sampler", "batch", "first s", "steady s",
              "steady tok/s", "best tok/s", "first/steady"]
    if later:
        header.append("new-process first s")
    body = []
    for row in rows:
        line = [row["backend"], row["impl"], row["sampler"], row["batch"],
                f"{row['first_call_s']:.2f}", f"{row['steady_call_s']:.3f}",
                f"{row['steady_tok_per_s']:.1f}", f"{row['best_tok_per_s']:.1f}",
                f"{row['first_over_steady']:.2f}x"]
        if later:
            seconds = row.get("later_first_call_s")
            line.append(f"{min(seconds):.2f}" if seconds else "-")
        body.append(line)
    steady_calls = (settings["calls"] - 1) * settings.get("rounds", 1)
    note = (f" pooled over {settings['rounds']} rounds; new-process first s: the fastest "
            "first call of rounds 2 on" if settings.get("rounds", 1) > 1 else "")
    return (
        f"Generation: {settings['prompt_length']}-token prompt + {settings['new_tokens']} new "
        f"tokens, no early stop; first call includes compilation; steady = median of "
        f"{steady_calls} later call(s), best = fastest of them{note}\n" + _table(header, body)
    )


def _training_table(rows):
    from kgpt2.bench.hf import HF_IMPL

    baseline = {(row["batch"], row["sequence_length"]): row["steady_tok_per_s"]
                for row in rows if row["impl"] == HF_IMPL}
    header = ["backend", "impl", "batch x length", "first s", "steady s/step",
              "steady tok/s", "first/steady"]
    if baseline:
        header.append("vs HF")
    body = []
    for row in rows:
        line = [row["backend"], row["impl"], f"{row['batch']} x {row['sequence_length']}",
                f"{row['first_step_s']:.2f}", f"{row['steady_step_s']:.3f}",
                f"{row['steady_tok_per_s']:.1f}", f"{row['first_over_steady']:.2f}x"]
        if baseline:
            base = baseline.get((row["batch"], row["sequence_length"]))
            line.append(f"{row['steady_tok_per_s'] / base:.2f}x" if base else "-")
        body.append(line)
    return "Training (first step includes compilation; steady = median after warm-up)\n" + _table(
        header, body
    )


def _comparison_table(rows):
    """Best generation tokens/s of every series side by side, as ratios to HF."""
    from kgpt2.bench.hf import HF_IMPL

    series = list(dict.fromkeys(series_name(row) for row in rows))
    baseline = next((name for name in series if name.endswith(HF_IMPL)), None)
    by_key = {}
    for row in rows:
        by_key.setdefault((row["sampler"], row["batch"]), {})[series_name(row)] = row["best_tok_per_s"]
    body = []
    for (sampler, batch), speeds in by_key.items():
        line = [sampler, batch]
        base = speeds.get(baseline)
        for name in series:
            value = speeds.get(name)
            if value is None:
                line.append("-")
            elif base and name != baseline:
                line.append(f"{value:.1f} ({value / base:.2f}x)")
            else:
                line.append(f"{value:.1f}")
        body.append(line)
    title = "Generation tokens/s side by side (fastest steady call, the HF script's statistic"
    if baseline:
        title += f"; in brackets: ratio to {baseline}"
    return title + ")\n" + _table(["sampler", "batch", *series], body)


def ceiling_lines(report):
    """Say where batch-1 generation stands against the fp32 bandwidth ceiling.

    Batch-1 decoding reads every weight once per token, so a token cannot
    take less than (weight bytes / memory bandwidth) seconds. The bandwidth
    is the best any backend's run measured: it is the machine's, and a
    busy moment only lowers a measurement. Weights small enough to stay in
    the CPU caches are not bound by memory bandwidth: no ceiling for them.

    Example:
    ```python
    from kgpt2.bench.report import ceiling_lines

    report = {"backends": {"jax": {"machine": {"matvec_bandwidth_gb_s": 35.0},
                                   "model": {"weight_bytes": 500e6, "dtype": "float32"}}},
              "summary": [{"what": "generate", "backend": "jax", "impl": "kgpt2",
                           "sampler": "greedy", "batch": 1, "best_tok_per_s": 35.0}]}
    print("\\n".join(ceiling_lines(report)))  # ... = 70.0 tok/s ... = 50% of the ceiling
    ```
    """
    bandwidths = [part["machine"].get("matvec_bandwidth_gb_s") or 0
                  for part in report["backends"].values()]
    rows = [row for row in report["summary"]
            if row["what"] == "generate" and row["batch"] == 1 and row["backend"] in report["backends"]]
    if not rows or not max(bandwidths, default=0):
        return []
    bandwidth = max(bandwidths)
    model = next(iter(report["backends"].values()))["model"]
    if model["weight_bytes"] < CACHE_RESIDENT_BYTES:
        return [
            f"No batch-1 bandwidth ceiling: {model['weight_bytes'] / 1e6:.0f} MB of weights "
            "can stay in the CPU caches."
        ]
    ceiling = bandwidth * 1e9 / model["weight_bytes"]
    lines = [
        f"Batch-1 ceiling: {bandwidth:.1f} GB/s (best matrix-vector bandwidth measured) / "
        f"{model['weight_bytes'] / 1e6:.0f} MB of {model['dtype']} weights read per token "
        f"= {ceiling:.1f} tok/s"
    ]
    for row in rows:
        lines.append(
            f"  {series_name(row)} {row['sampler']} batch 1: best {row['best_tok_per_s']:.1f} "
            f"tok/s = {100 * row['best_tok_per_s'] / ceiling:.0f}% of the ceiling"
        )
    return lines


def format_report(report):
    """Render a `kgpt2.bench` report as readable text tables.

    Example:
    ```python
    import kgpt2
    from kgpt2.bench.report import format_report

    report = kgpt2.bench("gpt2_tiny_random", batch_sizes=[1], samplers=["greedy"],
                         new_tokens=4, train=None, print_fn=lambda *a: None)
    print(format_report(report))
    ```
    """
    generation = [row for row in report["summary"] if row["what"] == "generate"]
    training = [row for row in report["summary"] if row["what"] == "train"]
    machine = report["machine"]
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items()
                         if version)
    sections = [
        f"Machine: {machine['cpu']}, {machine['usable_cores']} usable cores, "
        f"load {machine['load_average_1min']:.2f} at start; {versions}"
    ]
    models = {(part["model"]["preset"], part["model"]["params"], part["model"]["dtype"])
              for part in report["backends"].values()}
    for preset, params, dtype in sorted(models):
        sections[0] += f"\nModel: {preset}, {params / 1e6:.1f}M parameters, {dtype} weights"
    for backend, part in report["backends"].items():
        cache = part["machine"].get("compilation_cache")
        if cache:
            sections[0] += (
                f"\n{backend} compilation cache {cache['folder']}: {cache['files_at_start']} "
                "files at start (first calls may load programs instead of compiling; "
                "KGPT2_COMPILATION_CACHE=off measures cold)"
            )
    if generation:
        sections.append(_generation_table(generation, report["settings"]))
    if training:
        sections.append(_training_table(training))
    if len({series_name(row) for row in generation}) > 1:
        sections.append(_comparison_table(generation))
    sections.append("\n".join(ceiling_lines(report)))
    return "\n\n".join(section for section in sections if section)
