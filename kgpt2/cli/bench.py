"""`kgpt2 bench`: generation and training tokens/s (a call to `kgpt2.bench`)."""

import argparse
import sys


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
    from kgpt2.bench.benchmark import DTYPES
    from kgpt2.bench.benchmark import SUPPORTED_BACKENDS
    from kgpt2.bench.generation import IMPLS
    from kgpt2.bench.generation import SAMPLER_OPTIONS

    parser = subparsers.add_parser(
        "bench",
        help="measure generation and training tokens/s (table, JSON, PNG)",
        description="Measure generation speed (first call with compilation, "
        "then steady tokens/s) for each sampler and batch size, and training "
        "tokens/s, on one or more Keras backends. Prints a table; --json "
        "and --plot save every figure with the machine's description.",
        epilog="Compare with HF transformers in the same session: "
        "--compare-hf /tmp/hfpeer/bin/python path/to/hf_generate.py",
    )
    parser.add_argument("--preset", default="gpt2_base_random",
                        help="default: gpt2_base_random (GPT-2 124M's exact shape)")
    parser.add_argument("--batch-sizes", type=_int_list, default=[1, 8], metavar="B,B",
                        help="generation batch sizes (default: 1,8)")
    parser.add_argument("--samplers", type=_name_list, default=list(SAMPLER_OPTIONS),
                        metavar="NAMES",
                        help=f"from {', '.join(SAMPLER_OPTIONS)} (top_k: k=5, top_p: p=0.9; "
                        "default: all three)")
    parser.add_argument("--impl", type=_name_list, default=None, metavar="NAMES",
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
    import kgpt2
    from kgpt2.bench.benchmark import DEFAULT_IMPLS

    try:
        kgpt2.bench(
            preset=args.preset,
            batch_sizes=args.batch_sizes,
            samplers=args.samplers,
            impls=args.impl or DEFAULT_IMPLS,
            prompt_length=args.prompt_length,
            new_tokens=args.new_tokens,
            calls=args.calls,
            dtype=args.dtype,
            train=args.train,
            train_steps=args.train_steps,
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
