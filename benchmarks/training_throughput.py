#!/usr/bin/env python3
"""Training throughput of GPT-2 124M's shape (`gpt2_base_random`), float32.

Times `kgpt2.bench.training.bench_training` (the training measurement of
`kgpt2 bench`) at batch x length tokens, after warm-up steps that include
compiling, and prints tokens per second and per CPU-second.

Run (from the repository root):
  PYTHONPATH=$PWD python benchmarks/training_throughput.py
  PYTHONPATH=$PWD python benchmarks/training_throughput.py --batch-size 4 --sequence-length 256
"""

import argparse

import kgpt2
from kgpt2.bench.training import bench_training


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpt2_base_random")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--warmup-steps", type=int, default=2)
    args = parser.parse_args()
    lm = kgpt2.load(args.preset, sequence_length=args.sequence_length)
    row = bench_training(lm, batch_size=args.batch_size, sequence_length=args.sequence_length,
                         steps=args.steps, warmup_steps=args.warmup_steps)
    print(f"{args.preset} {args.batch_size} x {args.sequence_length}: "
          f"{row['steady_tok_per_s']:.1f} tokens/s, "
          f"{row['steady_tok_per_cpu_s']:.1f} tokens per CPU-second")


if __name__ == "__main__":
    main()
