"""Generation follows the model's dtype policy when it changes in place."""

import keras_hub
import numpy as np
import pytest
from test_generation import FOX
from test_generation import keras_hub_generate

import kgpt2
from kgpt2.generation import generate_token_ids
from kgpt2.generation.compiled import compiled_generate_function
from kgpt2.generation.sampler_lookup import reseed
from kgpt2.training.compiling import set_precision


@pytest.fixture
def own_lm():
    # Its own model: the switch is in place, and the shared one must stay float32.
    return kgpt2.load("gpt2_tiny_random", sequence_length=64)


def test_each_policy_gets_its_own_program_and_switching_back_reuses_the_first(own_lm):
    sampler = keras_hub.samplers.GreedySampler()
    in_float32 = compiled_generate_function(own_lm, sampler)
    set_precision(own_lm, "mixed_bfloat16")
    in_bfloat16 = compiled_generate_function(own_lm, sampler)
    set_precision(own_lm, "float32")
    assert in_bfloat16 is not in_float32
    assert compiled_generate_function(own_lm, sampler) is in_float32


@pytest.mark.slow
def test_after_a_switch_tokens_match_keras_hub_in_the_new_policy(own_lm):
    sampler = keras_hub.samplers.RandomSampler(seed=3)
    prompt, max_length = np.array([FOX]), 40

    def draw():
        reseed(sampler, 3)
        return generate_token_ids(own_lm, prompt, max_length, sampler=sampler)

    in_float32 = draw()
    set_precision(own_lm, "mixed_bfloat16")
    expected, _ = keras_hub_generate(
        own_lm, keras_hub.samplers.RandomSampler(seed=3), prompt, [4], max_length
    )
    np.testing.assert_array_equal(draw(), expected)
    set_precision(own_lm, "float32")
    np.testing.assert_array_equal(draw(), in_float32)
