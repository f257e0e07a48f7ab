"""`kgpt2 demo`: the offline tour (fine-tune on Tang poems, then generate)."""

import argparse

from kgpt2.demo import DEFAULT_RUN_DIR
from kgpt2.demo import run as run_demo


def register(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="fine-tune briefly on bundled Tang poems and generate (offline)",
        description="Load a preset (default gpt2_tiny_random, works offline), "
        "measure its perplexity on held-out Tang poems, fine-tune it on the "
        "rest of the 400 poems shipped with kgpt2, measure again, then "
        "generate two samples. The run is kept in --run-dir, which the "
        "next demo replaces (only a folder an earlier demo wrote). With "
        "network access, try --preset gpt2_base_en.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--preset", default="gpt2_tiny_random", help="preset to fine-tune")
    parser.add_argument("--steps", type=int, default=60, help="training steps")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per batch")
    parser.add_argument("--sequence-length", type=int, default=48, help="tokens per window")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="peak learning rate (None: 5e-3 for random presets, 5e-5 otherwise)")
    parser.add_argument("--prompt", default="春眠不觉晓", help="generation prompt")
    parser.add_argument("--run-dir", default=DEFAULT_RUN_DIR,
                        help="run folder; replaced by the next demo")
    parser.set_defaults(handler=run)


def run(args):
    run_demo(
        preset=args.preset,
        steps=args.steps,
        batch_size=args.batch_size,
        sequence_length=args.sequence_length,
        learning_rate=args.learning_rate,
        prompt=args.prompt,
        run_dir=args.run_dir,
    )
