"""`kgpt2 export`: write a preset or run as a transformers folder or a KerasHub preset."""

import kgpt2


def register(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a preset or fine-tuned run for transformers (Hub, vLLM, TGI) or KerasHub",
        description="Load SOURCE (a preset name, preset folder, finetune run folder "
        "or transformers folder) and write it to OUT_DIR with float32 weights "
        "(LoRA merged). --format transformers writes what "
        "GPT2LMHeadModel.from_pretrained and AutoTokenizer.from_pretrained load; "
        "--format keras writes a KerasHub preset (what kgpt2.save writes). "
        "OUT_DIR must be new or empty; --force replaces a previous kgpt2 export "
        "but never deletes files kgpt2 did not write.",
    )
    parser.add_argument("source", help="preset name, preset folder or finetune run folder")
    parser.add_argument("out_dir", help="the folder to write")
    parser.add_argument("--format", choices=["transformers", "keras"], default="transformers",
                        help="transformers (default) or keras")
    parser.add_argument("--force", action="store_true",
                        help="replace a previous kgpt2 export in OUT_DIR")
    parser.set_defaults(handler=run)


def run(args):
    from kgpt2.presets.exporting import check_destination

    # Before loading: a refused destination should cost no work.
    check_destination(args.out_dir, args.force)
    lm = kgpt2.load(args.source)
    folder = kgpt2.export(lm, args.out_dir, format=args.format, force=args.force)
    print(f"Exported {args.source} ({args.format}) to {folder}")
    return 0
