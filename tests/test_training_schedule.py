"""The schedule, step planning, run names, the Recipe and compile's validation (no training)."""

import dataclasses
import json

import keras
import pytest
import tensorflow as tf

import kgpt2
from kgpt2.training import WarmupPolynomialDecay
from kgpt2.training import validate_run_name
from kgpt2.training.steps import count_steps
from kgpt2.training.steps import fit_segments


def rates(schedule, steps):
    return [float(schedule(step)) for step in steps]


def test_schedule_warms_up_linearly_then_decays_to_the_end_rate():
    schedule = WarmupPolynomialDecay(1e-3, decay_steps=20, warmup_steps=4, end_learning_rate=1e-5)
    assert rates(schedule, [0, 1, 2, 4]) == pytest.approx([0.0, 2.5e-4, 5e-4, 1e-3])
    # Linear decay over the 16 steps after warmup.
    assert float(schedule(12)) == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)
    assert rates(schedule, [20, 25, 1000]) == pytest.approx([1e-5] * 3)
    decay = rates(schedule, range(4, 21))
    assert all(a > b for a, b in zip(decay, decay[1:]))


def test_schedule_without_warmup_is_the_reference_polynomial_decay():
    ours = WarmupPolynomialDecay(5e-5, decay_steps=30, end_learning_rate=0.0, power=2.0)
    reference = keras.optimizers.schedules.PolynomialDecay(5e-5, 30, 0.0, power=2.0)
    assert rates(ours, range(0, 35, 3)) == pytest.approx(rates(reference, range(0, 35, 3)))


def test_schedule_all_warmup_ends_at_end_rate():
    schedule = WarmupPolynomialDecay(1e-3, decay_steps=5, warmup_steps=5, end_learning_rate=1e-4)
    assert rates(schedule, [4, 5, 9]) == pytest.approx([8e-4, 1e-4, 1e-4])


def test_schedule_round_trips_through_keras_serialization():
    schedule = WarmupPolynomialDecay(3e-4, decay_steps=50, warmup_steps=5, end_learning_rate=1e-6, power=1.5)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, WarmupPolynomialDecay)
    assert restored.get_config() == schedule.get_config()
    assert rates(restored, range(0, 60, 7)) == pytest.approx(rates(schedule, range(0, 60, 7)))
    # And inside an optimizer's config, as Keras saves it.
    optimizer = keras.optimizers.Adam.from_config(keras.optimizers.Adam(schedule).get_config())
    assert optimizer.learning_rate == pytest.approx(0.0)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(peak_learning_rate=-1.0, decay_steps=10), "peak_learning_rate"),
        (dict(peak_learning_rate=1e-3, decay_steps=0), "decay_steps"),
        (dict(peak_learning_rate=1e-3, decay_steps=10, warmup_steps=11), "warmup_steps"),
        (dict(peak_learning_rate=1e-3, decay_steps=10, end_learning_rate="0"), "end_learning_rate"),
    ],
)
def test_schedule_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        WarmupPolynomialDecay(**arguments)


def test_count_steps_from_cardinality_and_errors():
    dataset = tf.data.Dataset.from_tensor_slices([str(i) for i in range(10)]).batch(4)
    assert count_steps(dataset, epochs=2) == (6, 3)
    assert count_steps(dataset.repeat(), steps=7, epochs=2) == (7, 4)
    with pytest.raises(ValueError, match="infinite.*pass steps=N"):
        count_steps(dataset.repeat())
    with pytest.raises(ValueError, match="unknown.*pass steps=N"):
        count_steps(dataset.filter(lambda batch: True))
    with pytest.raises(ValueError, match="empty"):
        count_steps(dataset.take(0))
    with pytest.raises(ValueError, match="Pass steps=N"):
        count_steps()
    with pytest.raises(ValueError, match="epochs"):
        count_steps(dataset, epochs=0)


def test_steps_alone_make_one_epoch_per_pass_over_the_data():
    dataset = tf.data.Dataset.from_tensor_slices([str(i) for i in range(10)]).batch(4)
    # 3 batches per pass: 7 steps are epochs of 3, 3 and 1 step.
    assert count_steps(dataset, steps=7) == (7, 3)
    assert [segment.steps for segment in fit_segments(0, 7, 3)] == [6, 1]
    assert count_steps(dataset, steps=2) == (2, 2)
    # A dataset that repeats (or of unknown length) is one epoch.
    assert count_steps(dataset.repeat(), steps=7) == (7, 7)
    assert count_steps(dataset.filter(lambda batch: True), steps=7) == (7, 7)


def test_recipe_round_trips_and_refuses_silently_wrong_values():
    import math

    recipe = kgpt2.Recipe(learning_rate=1e-3, warmup_steps=5, steps=50, lora_rank=4, mixed_precision=True)
    assert recipe.mixed_precision == "mixed_bfloat16"
    assert kgpt2.Recipe.from_dict(recipe.to_dict()) == recipe
    assert kgpt2.Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe
    assert recipe.replace(lora_rank=8) == kgpt2.Recipe(**dict(recipe.to_dict(), lora_rank=8))
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.learning_rate = 1.0
    run = kgpt2.RunOptions(run_name="poems", save_every=None)
    assert run.save_every == 0 and kgpt2.RunOptions.from_dict(run.to_dict()) == run
    assert recipe.changes_from(dict(recipe.to_dict(), learning_rate=2e-3, other=1)) == [
        ("learning_rate", 2e-3, 1e-3)
    ]
    cases = [
        (dict(weight_decay=math.nan), "weight_decay must be a number >= 0, got nan"),
        (dict(learning_rate=math.inf), "learning_rate"),
        (dict(steps=4, warmup_steps=5), "warmup_steps=5 is more than steps=4"),
        (dict(steps=2, epochs=3), "epochs=3 is more than steps=2"),
        (dict(distribution="everywhere"), "distribution"),
    ]
    for options, message in cases:
        with pytest.raises(kgpt2.Error, match=message):
            kgpt2.Recipe(**options)
    with pytest.raises(kgpt2.Error, match="has no option 'learning_rat'"):
        kgpt2.Recipe.from_dict({"learning_rat": 1e-3})
    with pytest.raises(ValueError, match="sample_length"):
        kgpt2.RunOptions(sample_length=0)


def test_learning_rate_defaults_suit_the_preset():
    assert kgpt2.Recipe.for_preset("gpt2_tiny_random").learning_rate == 2e-3
    assert kgpt2.Recipe.for_preset("gpt2_base_random", steps=5).learning_rate == 2e-3
    assert kgpt2.Recipe.for_preset("gpt2_base_en").learning_rate == 5e-5
    assert kgpt2.Recipe.for_preset("gpt2_tiny_random", learning_rate=1e-4).learning_rate == 1e-4
    assert kgpt2.Recipe().learning_rate == 5e-5


def test_fit_segments_cover_every_step_once_on_the_uninterrupted_epoch_bounds():
    for start in range(0, 23):
        segments = fit_segments(start, 23, 4)
        covered = []
        for segment in segments:
            for epoch in range(segment.initial_epoch, segment.epochs):
                first = max(segment.first_step, epoch * 4) if epoch == segment.initial_epoch else epoch * 4
                covered.extend(range(first, min(first + segment.steps_per_epoch, 23)))
                # Each epoch of a segment ends where the uninterrupted epoch ends.
                assert covered[-1] + 1 in {(epoch + 1) * 4, 23}
        assert covered == list(range(start, 23))
    assert fit_segments(23, 23, 4) == []


@pytest.mark.parametrize("name", ["run1", "poems_2024-v2", "a.b"])
def test_run_names_accepted(name):
    assert validate_run_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "..", "../escape", "a/b", "/tmp/run", "a\\b", ".hidden", "x" * 200, "tab\tname", None]
)
def test_run_names_that_could_escape_are_rejected(name):
    with pytest.raises(ValueError, match="run_name"):
        validate_run_name(name)


@pytest.mark.slow
def test_compile_sets_the_reference_recipe():
    import keras_hub

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=16)
    texts = tf.data.Dataset.from_tensor_slices(["a", "b", "c"]).batch(2)
    kgpt2.compile(lm, learning_rate=1e-3, dataset=texts, epochs=3, clipnorm=1.0)
    assert isinstance(lm.optimizer, keras.optimizers.Adam)
    assert lm.optimizer.global_clipnorm == 1.0
    schedule = lm.optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == "WarmupPolynomialDecay"
    assert schedule["config"]["decay_steps"] == 6 and schedule["config"]["peak_learning_rate"] == 1e-3
    assert isinstance(lm.loss, keras.losses.SparseCategoricalCrossentropy) and lm.loss.from_logits
    # The loss is a mean over real tokens, whatever the padding.
    x, y, weights = lm.preprocessor(["短", "a much longer text than the other one"])
    padded = keras.ops.convert_to_numpy(weights).sum(axis=1)
    assert padded[0] < padded[1]
    logits = lm(x)
    token_losses = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    expected = (keras.ops.convert_to_numpy(token_losses) * keras.ops.convert_to_numpy(weights)).sum() / padded.sum()
    assert float(lm.loss(y, logits, weights)) == pytest.approx(float(expected), rel=1e-5)
    assert isinstance(lm.sampler, keras_hub.samplers.TopKSampler)
    kgpt2.compile(lm, steps=4, weight_decay=0.01, sampler="greedy")
    assert isinstance(lm.optimizer, keras.optimizers.AdamW)
    assert isinstance(lm.sampler, keras_hub.samplers.GreedySampler)


def test_compile_switches_precision_in_place_and_back():
    lm = kgpt2.load("gpt2_tiny_random", sequence_length=16)
    kgpt2.compile(lm, steps=4, mixed_precision=True)
    layer = lm.backbone.transformer_layers[0]
    assert layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32"
    assert lm.preprocessor.tokenizer.compute_dtype == "int32"
    kgpt2.compile(lm, steps=4, mixed_precision=False)
    assert layer.compute_dtype == "float32"


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(lora_rank=0), "lora_rank"),
        (dict(mixed_precision="float8"), "mixed_precision"),
        (dict(clipnorm=-1.0), "clipnorm"),
        (dict(gradient_accumulation_steps=0), "gradient_accumulation_steps"),
        (dict(weight_decay=-0.1), "weight_decay"),
        (dict(warmup_steps=20), "warmup_steps"),
        (dict(steps=None), "Pass steps=N"),
        (dict(weight_decay=float("nan")), "weight_decay"),
        (dict(lora_rank=65), "larger than the model's hidden size 64"),
    ],
)
def test_compile_rejects_bad_options(tiny_lm, options, message):
    arguments = dict(steps=10, **options) if "steps" not in options else options
    with pytest.raises(ValueError, match=message):
        kgpt2.compile(tiny_lm, **arguments)


@pytest.mark.slow
def test_compile_rejects_changing_an_enabled_lora_rank():
    lm = kgpt2.load("gpt2_tiny_random", sequence_length=16)
    kgpt2.compile(lm, steps=4, lora_rank=2)
    kgpt2.compile(lm, steps=4, lora_rank=2)  # same rank: fine
    with pytest.raises(ValueError, match="rank 2"):
        kgpt2.compile(lm, steps=4, lora_rank=8)


def test_compile_rejects_other_models():
    with pytest.raises(ValueError, match="CausalLM"):
        kgpt2.compile(keras.Sequential([keras.layers.Dense(1)]), steps=1)
