"""Repetition control on a model that really loops.

Reproduces the reference article's greedy loop ("i was in the process of
getting my license..." repeated until max_length): a gpt2_tiny_random
fine-tuned for 60 steps with plain `lm.fit` on that sentence repeated loops
under plain greedy search, and the repetition options break the loop.
Training costs about 10-15 s on 2 CPU cores, mostly the first compile of
the train step; the model is shared by this module.
"""

import keras
import keras_hub
import pytest
from samplers_reference import assert_each_token_is_argmax
from samplers_reference import generate_ids
from samplers_reference import repeated_ngrams

import kgpt2

SENTENCE = "i was in the process of getting my license."
PROMPT = "i was in the process"


@pytest.fixture(scope="module")
def looping_lm():
    keras.utils.set_random_seed(0)
    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32, seed=0)
    texts = [" ".join([SENTENCE] * 4)] * (4 * 60)
    lm.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    lm.fit(texts, batch_size=4, epochs=1, verbose=0)
    return lm


@pytest.mark.slow
def test_plain_greedy_loops(looping_lm):
    looping_lm.compile(sampler=keras_hub.samplers.GreedySampler())
    text = looping_lm.generate(PROMPT, max_length=48, stop_token_ids=None)
    assert text.count("i was in the process of getting my license") >= 3, text


@pytest.mark.slow
@pytest.mark.parametrize("name, options", [
    ("greedy", {}),
    ("beam", dict(num_beams=3)),
    ("top_k", dict(k=5, seed=0)),
])
def test_no_repeat_ngram_size_3_never_repeats_a_3gram(looping_lm, name, options):
    looping_lm.compile(sampler=kgpt2.samplers.get(name, no_repeat_ngram_size=3,
                                                  **options))
    ids, prompt_lengths = generate_ids(looping_lm, [PROMPT, "my license"], 48)
    for row, start in enumerate(prompt_lengths):
        assert repeated_ngrams(ids[row], start, 3) == [], (row, ids[row])
    text = looping_lm.preprocessor.tokenizer.detokenize(ids[0][1:])
    assert text.count("i was in the process of getting my license") <= 1, text


@pytest.mark.slow
def test_greedy_no_repeat_and_penalty_follow_numpy_decoding(looping_lm):
    looping_lm.compile(sampler=kgpt2.samplers.get(
        "greedy", no_repeat_ngram_size=3, repetition_penalty=2.0))
    ids, prompt_lengths = generate_ids(looping_lm, [PROMPT, "my license"], 40)
    assert_each_token_is_argmax(looping_lm, ids, prompt_lengths, penalty=2.0,
                                ngram_size=3)
