"""`kgpt2 demo`: the offline tour (fine-tune on Tang poems, then generate)."""


def register(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="fine-tune briefly on bundled Tang poems and generate (offline)",
        description="Load a preset (default gpt2_tiny_random, works offline), "
        "fine-tune it on 400 Tang poems shipped with kgpt2 while printing the "
        "loss, then generate with two samplers and print tokens per second. "
        "With network access, try --preset gpt2_base_en.",
    )
    parser.add_argument("--preset", default="gpt2_tiny_random")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default: 2e-3 for random presets, 5e-5 otherwise")
    parser.add_argument("--prompt", default="春眠不觉晓")
    parser.set_defaults(handler=run)


def run(args):
    from kgpt2.demo import run as run_demo

    run_demo(
        preset=args.preset,
        steps=args.steps,
        batch_size=args.batch_size,
        sequence_length=args.sequence_length,
        learning_rate=args.learning_rate,
        prompt=args.prompt,
    )
