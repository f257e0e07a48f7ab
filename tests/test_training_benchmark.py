"""Training throughput of the 124M shape (run with `pytest -m benchmark`)."""

import kgpt2  # noqa: F401  (first: it picks the Keras backend)

import pytest  # noqa: E402

from kgpt2.training.speed import training_tokens_per_second  # noqa: E402


@pytest.mark.benchmark
def test_gpt2_base_random_training_tokens_per_second():
    wall, cpu = training_tokens_per_second("gpt2_base_random", batch_size=8, sequence_length=128, steps=5)
    print(f"gpt2_base_random 8 x 128: {wall:.1f} tokens/s, {cpu:.1f} tokens per CPU-second")
    assert wall > 0 and cpu > 0
