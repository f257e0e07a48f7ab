"""Training throughput of the 124M shape (run with `pytest -m benchmark`)."""

import pytest

import kgpt2
from kgpt2.bench.training import bench_training


@pytest.mark.benchmark
def test_gpt2_base_random_training_tokens_per_second():
    lm = kgpt2.load("gpt2_base_random", sequence_length=128)
    row = bench_training(lm, batch_size=8, sequence_length=128, steps=7, warmup_steps=2)
    print(f"gpt2_base_random 8 x 128: {row['steady_tok_per_s']:.1f} tokens/s, "
          f"{row['steady_tok_per_cpu_s']:.1f} tokens per CPU-second")
    assert row["steady_tok_per_s"] > 0 and row["steady_tok_per_cpu_s"] > 0
