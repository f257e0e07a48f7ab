"""`kgpt2 bench`: generation and training tokens/s (a call to `kgpt2.bench.run`)."""

import argparse
import sys

import kgpt2
from kgpt2.bench.report import batch_one_ceiling
from kgpt2.bench.report import series_name
from kgpt2.bench.settings import DEFAULT_IMPLS
from kgpt2.bench.settings import DTYPES
from kgpt2.bench.settings import HF_IMPL
from kgpt2.bench.settings import IMPLS
from kgpt2.bench.settings import SAMPLER_OPTIONS
from kgpt2.bench.settings import SUPPORTED_BACKENDS
from kgpt2.cli.tables import print_lines
from kgpt2.cli.tables import print_table


def _int_list(text):
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 1,8, got {text!r}"
        ) from None
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"expected integers >= 1 such as 1,8, got {text!r}")
    return values


def _name_list(text):
    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return values


def _train_shape(text):
    if text.lower() in ("none", "off", "0"):
        return None
    values = _int_list(text)
    if len(values) != 2:
        raise argparse.ArgumentTypeError(
            f"expected BATCH,LENGTH such as 8,128 (or 'none'), got {text!r}"
        )
    return values


def register(subparsers):
    parser = subparsers.add_parser(
        "bench",
        help="measure generation and training tokens/s (table, JSON, PNG)",
        description="Measure generation speed (first call with compilation, "
        "then steady tokens/s) for each sampler and batch size, and training "
        "tokens/s, on one or more Keras backends. Prints tables; --json "
        "and --plot save every figure with the machine's description.",
        epilog="Compare with HF transformers in the same session: "
        "--compare-hf PYTHON SCRIPT, where PYTHON is an interpreter with torch "
        "and transformers installed and SCRIPT the peer script hf_generate.py.",
    )
    parser.add_argument("--preset", default="gpt2_base_random",
                        help="default: gpt2_base_random (GPT-2 124M's exact shape)")
    parser.add_argument("--batch-sizes", type=_int_list, default=[1, 8], metavar="B,B",
                        help="generation batch sizes (default: 1,8)")
    parser.add_argument("--samplers", type=_name_list, default=list(SAMPLER_OPTIONS),
                        metavar="NAMES",
                        help=f"from {', '.join(SAMPLER_OPTIONS)} (top_k: k=5, top_p: p=0.9; "
                        "default: all three)")
    parser.add_argument("--impl", type=_name_list, default=list(DEFAULT_IMPLS), metavar="NAMES",
                        help=f"generation paths, from {', '.join(IMPLS)}; several are "
                        "measured in turn (default: kgpt2)")
    parser.add_argument("--prompt-length", type=int, default=4,
                        help="prompt tokens (default: 4, 'The quick brown fox')")
    parser.add_argument("--new-tokens", type=int, default=128, help="default: 128")
    parser.add_argument("--calls", type=int, default=3,
                        help="generation calls per measurement: 1 first + steady ones "
                        "(default: 3, as the HF peer script)")
    parser.add_argument("--dtype", choices=DTYPES, default=None,
                        help="load the model in this precision (default: the preset's own, "
                        "float32); lower precision changes outputs, so report it apart")
    parser.add_argument("--train", type=_train_shape, default=[8, 128], metavar="B,L",
                        help="training batch x sequence length, or 'none' (default: 8,128)")
    parser.add_argument("--train-steps", type=int, default=7, help="default: 7")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="train with bfloat16 products and float32 weights "
                        "(kgpt2.compile_lm's mixed_precision=True); the HF peer stays float32")
    parser.add_argument("--backends", type=_name_list, default=None, metavar="NAMES",
                        help=f"Keras backends, from {', '.join(SUPPORTED_BACKENDS)} "
                        "(default: the running one; others run in a subprocess)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every backend (and the HF peer) in turn this many "
                        "times, in fresh processes, pooling the calls: for busy machines "
                        "(default: 1)")
    parser.add_argument("--compare-hf", nargs=2, default=None, metavar=("PYTHON", "SCRIPT"),
                        help="also run the HF transformers peer script SCRIPT "
                        "(hf_generate.py) with the interpreter PYTHON")
    parser.add_argument("--json", default=None, metavar="FILE", help="write the report as JSON")
    parser.add_argument("--plot", default=None, metavar="FILE",
                        help="write tokens/s by batch size and sampler as a PNG")
    parser.set_defaults(handler=run)


def run(args):
    try:
        report = kgpt2.bench.run(
            preset=args.preset,
            batch_sizes=args.batch_sizes,
            samplers=args.samplers,
            impls=args.impl,
            prompt_length=args.prompt_length,
            new_tokens=args.new_tokens,
            calls=args.calls,
            dtype=args.dtype,
            train=args.train,
            train_steps=args.train_steps,
            mixed_precision=args.mixed_precision,
            backends=args.backends,
            rounds=args.rounds,
            compare_hf=args.compare_hf,
            json_path=args.json,
            plot_path=args.plot,
        )
    except RuntimeError as error:
        # A backend subprocess or the HF peer failed; its output is above.
        print(f"kgpt2 bench: error: {error}", file=sys.stderr)
        return 1
    print_report(report)
    for path in (args.json, args.plot):
        if path is not None:
            print_lines(f"Wrote {path}")
    return 0


def _header_lines(report):
    machine = report.machine
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items()
                         if version)
    lines = [f"Machine: {machine['cpu']}, {machine['usable_cores']} usable cores, "
             f"load {machine['load_average_1min']:.2f} at start; {versions}"]
    if report.hf_env:
        lines.append(f"HF peer: torch {report.hf_env.get('torch')}, transformers "
                     f"{report.hf_env.get('transformers')} ({report.hf_env.get('python')})")
    models = {(part["model"]["preset"], part["model"]["params"], part["model"]["dtype"])
              for part in report.backends.values()}
    for preset, params, dtype in sorted(models):
        lines.append(f"Model: {preset}, {params / 1e6:.1f}M parameters, {dtype} weights")
    for backend, part in report.backends.items():
        cache = part["machine"].get("compilation_cache")
        if cache:
            lines.append(
                f"{backend} compilation cache {cache['folder']}: {cache['files_at_start']} "
                "files at start (first calls may load programs instead of compiling; "
                "KGPT2_COMPILATION_CACHE=off measures cold)"
            )
    return lines


def _print_generation(rows, settings):
    later = any(row.get("later_first_call_s") for row in rows)
    columns = ["backend", "impl", "sampler", "batch", "first s", "steady s",
               "steady tok/s", "best tok/s", "first/steady"]
    if later:
        columns.append("new-process first s")
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
    rounds = settings.get("rounds", 1)
    steady_calls = (settings["calls"] - 1) * rounds
    note = (f" Pooled over {rounds} rounds; new-process first s: the fastest first call "
            "of rounds 2 on." if rounds > 1 else "")
    print_lines(
        "",
        f"Generation: {settings['prompt_length']}-token prompt + {settings['new_tokens']} new "
        f"tokens, no early stop; first call includes compilation; steady = median of "
        f"{steady_calls} later call(s), best = fastest of them.{note}",
    )
    print_table(None, columns, body, numeric=set(columns[3:]))


def _print_training(rows):
    baseline = {(row["batch"], row["sequence_length"]): row["steady_tok_per_s"]
                for row in rows if row["impl"] == HF_IMPL}
    columns = ["backend", "impl", "precision", "batch x length", "first s", "steady s/step",
               "steady tok/s", "tok/CPU-s", "first/steady", "model GFLOP/s",
               "matmul peak GFLOP/s", "MFU"]
    if baseline:
        columns.append("vs HF")
    body = []
    for row in rows:
        cpu = row.get("steady_tok_per_cpu_s")
        line = [row["backend"], row["impl"], row.get("precision") or "-",
                f"{row['batch']} x {row['sequence_length']}",
                f"{row['first_step_s']:.2f}", f"{row['steady_step_s']:.3f}",
                f"{row['steady_tok_per_s']:.1f}", f"{cpu:.1f}" if cpu else "-",
                f"{row['first_over_steady']:.2f}x", f"{row['model_gflop_s']:.1f}",
                f"{row['peak_gflop_s']:.1f}" if row["peak_gflop_s"] else "-",
                f"{100 * row['mfu']:.0f}%" if row["mfu"] else "-"]
        if baseline:
            base = baseline.get((row["batch"], row["sequence_length"]))
            line.append(f"{row['steady_tok_per_s'] / base:.2f}x" if base else "-")
        body.append(line)
    print_lines("", "Training: first step includes compilation; steady = median after "
                "warm-up; tok/CPU-s: tokens per second of this process's CPU time, "
                "all cores summed; model GFLOP/s: (6 x parameters + 12 x layers x hidden x "
                "length) FLOPs per token x steady tok/s; MFU: that over the matrix-multiply "
                "peak its library reached at the step's shapes in this run, in the step's "
                "precision (bfloat16 under mixed precision; the HF peer's is float32).")
    print_table(None, columns, body, numeric=set(columns[3:]))


def _print_comparison(rows):
    """Best generation tokens/s of every series side by side, as ratios to HF."""
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
    print_lines("", title + ")")
    print_table(None, ["sampler", "batch", *series], body, numeric={"batch", *series})


def _ceiling_lines(report):
    ceiling = batch_one_ceiling(report)
    if ceiling is None:
        return []
    megabytes = ceiling.weight_bytes / 1e6
    if ceiling.tok_per_s is None:
        return [f"No batch-1 bandwidth ceiling: {megabytes:.0f} MB of weights "
                "can stay in the CPU caches."]
    lines = [
        f"Batch-1 ceiling: {ceiling.bandwidth_gb_s:.1f} GB/s (best matrix-vector bandwidth "
        f"measured) / {megabytes:.0f} MB of {ceiling.dtype} weights read per token "
        f"= {ceiling.tok_per_s:.1f} tok/s"
    ]
    for series, sampler, best, share in ceiling.shares:
        lines.append(f"  {series} {sampler} batch 1: best {best:.1f} tok/s = "
                     f"{100 * share:.0f}% of the ceiling")
    return lines


def print_report(report):
    """Print a `kgpt2.bench.BenchReport` as the `kgpt2 bench` tables."""
    print_lines(*_header_lines(report))
    generation, training = report.rows("generate"), report.rows("train")
    if generation:
        _print_generation(generation, report.settings)
    if training:
        _print_training(training)
    if len({series_name(row) for row in generation}) > 1:
        _print_comparison(generation)
    ceiling = _ceiling_lines(report)
    if ceiling:
        print_lines("", *ceiling)
