"""The memory planner's arithmetic, checked against independent counts."""

import numpy as np
import pytest

import kgpt2
from kgpt2.presets import OFFICIAL_PRESETS
from kgpt2.presets import PresetError
from kgpt2.presets.catalog import backbone_config
from kgpt2.presets.gpt2_weights import gpt2_weights
from kgpt2.presets.memory import format_bytes
from kgpt2.training.memory_plan import ACCUMULATION_UPDATE_COPIES
from kgpt2.training.memory_plan import FRAMEWORK_BYTES
from kgpt2.training.memory_plan import PROCESS_GROUP_BYTES
from kgpt2.training.memory_plan import PROGRAM_BYTES

ALL_PRESETS = [*OFFICIAL_PRESETS, "gpt2_tiny_random", "gpt2_base_random"]


def _size(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


@pytest.mark.parametrize("preset", list(OFFICIAL_PRESETS))
def test_parameters_match_keras_hub_preset_metadata(preset):
    import keras_hub

    expected = keras_hub.models.GPT2Backbone.presets[preset]["metadata"]["params"]
    estimate = kgpt2.plan(preset, batch_size=1, sequence_length=8)
    assert estimate.parameters == estimate.trainable_parameters == expected
    assert estimate.parameter_bytes == 4 * expected
    assert estimate.gradient_bytes == 4 * expected
    assert estimate.optimizer_bytes == 2 * 4 * expected  # Adam's two moments


@pytest.mark.slow
@pytest.mark.parametrize("lora_rank", [None, 4])
def test_weight_list_matches_a_built_backbone(lora_rank):
    import keras_hub

    config = backbone_config("gpt2_tiny_random")
    backbone = keras_hub.models.GPT2Backbone(**config)
    if lora_rank:
        backbone.enable_lora(lora_rank)
    built = [(v.path, tuple(v.shape), v.trainable) for v in backbone.weights]
    listed = [(w.path, w.shape, w.trainable) for w in gpt2_weights(config, lora_rank)]
    assert listed == built
    estimate = kgpt2.plan("gpt2_tiny_random", 1, 8, lora_rank=lora_rank)
    assert estimate.parameters == backbone.count_params()
    assert estimate.trainable_parameters == _size(backbone.trainable_weights)


def test_lora_trainable_count_of_gpt2_base():
    # Keras' EinsumDense LoRA on query and value: A is (hidden, heads, rank),
    # B is (rank, head_dim); the two projections' biases stay trainable.
    layers, hidden, heads, rank = 12, 768, 12, 8
    per_projection = hidden * heads * rank + rank * (hidden // heads) + hidden
    estimate = kgpt2.plan("gpt2_base_en", 1, 8, lora_rank=rank)
    assert estimate.trainable_parameters == layers * 2 * per_projection


@pytest.mark.slow
def test_adam_moments_and_accumulators_match_a_built_keras_optimizer(fresh_tiny_lm):
    import keras

    optimizer = keras.optimizers.Adam(gradient_accumulation_steps=2)
    optimizer.build(fresh_tiny_lm.trainable_variables)
    tensors = [v for v in optimizer.variables if len(v.shape) > 0]
    moments = [v for v in tensors if "accumulator" not in v.path]
    accumulators = [v for v in tensors if "accumulator" in v.path]
    estimate = kgpt2.plan("gpt2_tiny_random", 2, 8, gradient_accumulation_steps=2)
    assert estimate.optimizer_bytes == 4 * _size(moments)
    # Gradients: one per trainable weight, Keras' accumulator, and the
    # copies XLA keeps around the conditional update.
    trainable = _size(fresh_tiny_lm.trainable_variables)
    assert _size(accumulators) == trainable
    assert estimate.gradient_bytes == 4 * (trainable + _size(accumulators)
                                           + ACCUMULATION_UPDATE_COPIES * trainable)


def test_total_is_the_sum_of_parts():
    estimate = kgpt2.plan("gpt2_medium_en", 8, 256, lora_rank=4, mixed_precision=True)
    assert estimate.total_bytes == (
        estimate.parameter_bytes + estimate.gradient_bytes
        + estimate.optimizer_bytes + estimate.activation_bytes + estimate.runtime_bytes
    )
    assert estimate.runtime_bytes >= FRAMEWORK_BYTES + PROGRAM_BYTES


@pytest.mark.parametrize("preset", ALL_PRESETS)
def test_lora_shrinks_gradients_and_adam_state(preset):
    full = kgpt2.plan(preset, 4, 128)
    lora = kgpt2.plan(preset, 4, 128, lora_rank=8)
    assert lora.optimizer_bytes * 20 < full.optimizer_bytes
    assert lora.gradient_bytes * 20 < full.gradient_bytes
    assert lora.parameter_bytes > full.parameter_bytes  # the factors are extra
    assert lora.activation_bytes <= full.activation_bytes
    assert lora.total_bytes < full.total_bytes


@pytest.mark.parametrize("preset", ALL_PRESETS)
def test_accumulation_divides_activations_and_adds_one_buffer(preset):
    full = kgpt2.plan(preset, 8, 128)
    accumulated = kgpt2.plan(preset, 8, 128, gradient_accumulation_steps=4)
    assert accumulated.micro_batch_size == 2
    assert accumulated.activation_bytes == pytest.approx(full.activation_bytes / 4, rel=1e-6)
    assert accumulated.gradient_bytes == (2 + ACCUMULATION_UPDATE_COPIES) * full.gradient_bytes
    assert accumulated.optimizer_bytes == full.optimizer_bytes


def test_mixed_precision_halves_layer_activations_but_adds_16_bit_weight_copies():
    full = kgpt2.plan("gpt2_large_en", 4, 1024)
    mixed = kgpt2.plan("gpt2_large_en", 4, 1024, mixed_precision=True)
    assert mixed.parameter_bytes == full.parameter_bytes * 6 // 4
    assert full.activation_bytes / 2 < mixed.activation_bytes < full.activation_bytes
    assert mixed.gradient_bytes == full.gradient_bytes  # float32 variables


def test_data_parallel_splits_the_batch_and_replicates_weights():
    one = kgpt2.plan("gpt2_base_en", 8, 256)
    four = kgpt2.plan("gpt2_base_en", 8, 256, devices=4)
    assert four.distribution == "data_parallel"
    assert four.micro_batch_size == 2
    assert four.parameter_bytes == one.parameter_bytes
    assert four.optimizer_bytes == one.optimizer_bytes
    assert four.activation_bytes == pytest.approx(one.activation_bytes / 4, rel=1e-6)


def test_model_parallel_splits_all_but_layer_norms_and_output_biases():
    config = backbone_config("gpt2_base_en")
    hidden, layers = config["hidden_dim"], config["num_layers"]
    # Replicated: 2 layer norms (gamma, beta) and 2 output biases per layer,
    # and the final layer norm.
    replicated = layers * (4 * hidden + 2 * hidden) + 2 * hidden
    total = 124439808
    for devices in (2, 4):
        estimate = kgpt2.plan("gpt2_base_en", 8, 256, devices=devices,
                              distribution="model_parallel")
        expected = replicated + (total - replicated) // devices
        assert estimate.parameter_bytes == 4 * expected
        assert estimate.optimizer_bytes == 2 * 4 * expected
        assert estimate.micro_batch_size == 8  # every device sees the batch
    one = kgpt2.plan("gpt2_base_en", 8, 256)
    two = kgpt2.plan("gpt2_base_en", 8, 256, devices=2, distribution="model_parallel")
    assert two.activation_bytes < one.activation_bytes


def test_model_parallel_of_25_head_model_splits_inside_heads():
    one = kgpt2.plan("gpt2_extra_large_en", 1, 128)
    two = kgpt2.plan("gpt2_extra_large_en", 1, 128, devices=2,
                     distribution="model_parallel")
    assert two.parameter_bytes < 0.51 * one.parameter_bytes


def test_model_parallel_rejects_a_device_count_that_cannot_split():
    with pytest.raises(ValueError, match="hidden_dim"):
        kgpt2.plan("gpt2_base_en", 8, 256, devices=7, distribution="model_parallel")


@pytest.mark.parametrize("distribution", ["data_parallel", "model_parallel"])
def test_processes_keep_bytes_per_device_and_count_one_runtime_each(distribution):
    arguments = dict(batch_size=8, sequence_length=256, devices=4, distribution=distribution)
    one = kgpt2.plan("gpt2_large_en", **arguments)
    four = kgpt2.plan("gpt2_large_en", processes=4, **arguments)
    two = kgpt2.plan("gpt2_large_en", processes=2, **arguments)
    assert four.processes == 4
    # A layout spans every process's devices: per device, only the
    # group's own runtime is added.
    assert four.total_bytes == two.total_bytes == one.total_bytes + PROCESS_GROUP_BYTES
    assert four.process_bytes == four.total_bytes  # one device each
    # Two devices per process: their buffers twice, the framework, the
    # compiled programs and the group's buffers once.
    fixed = FRAMEWORK_BYTES + PROGRAM_BYTES
    assert two.process_bytes == 2 * two.total_bytes - fixed - PROCESS_GROUP_BYTES
    assert one.process_bytes == 4 * one.total_bytes - 3 * fixed


def test_model_parallel_over_processes_holds_a_part_of_the_model_each():
    alone = kgpt2.plan("gpt2_extra_large_en", 8, 1024, mixed_precision=True)
    for processes in (2, 4):
        spread = kgpt2.plan("gpt2_extra_large_en", 8, 1024, mixed_precision=True,
                            devices=processes, processes=processes,
                            distribution="model_parallel")
        assert spread.parameter_bytes < 0.6 * alone.parameter_bytes * 2 / processes
        assert spread.process_bytes < alone.process_bytes


def test_devices_must_divide_among_processes():
    with pytest.raises(ValueError, match="processes=2"):
        kgpt2.plan("gpt2_base_en", 8, 256, devices=3, processes=2)


def test_estimates_grow_with_batch_length_and_model():
    totals = [kgpt2.plan("gpt2_base_en", b, 256).total_bytes for b in (1, 2, 4)]
    assert totals == sorted(totals) and len(set(totals)) == 3
    totals = [kgpt2.plan("gpt2_base_en", 2, s).total_bytes for s in (128, 512, 1024)]
    assert totals == sorted(totals) and len(set(totals)) == 3
    sizes = ["gpt2_base_en", "gpt2_medium_en", "gpt2_large_en", "gpt2_extra_large_en"]
    totals = [kgpt2.plan(p, 2, 256).total_bytes for p in sizes]
    assert totals == sorted(totals) and len(set(totals)) == 4
    assert kgpt2.plan("gpt2_base_random", 2, 256).total_bytes == (
        kgpt2.plan("gpt2_base_en", 2, 256).total_bytes)


def test_comparison_lists_each_option_and_marks_the_request(capsys):
    from kgpt2.cli.plan import print_plan

    result = kgpt2.plan("gpt2_medium_en", 8, 512, lora_rank=16, mixed_precision=True)
    labels = [row.label for row in result.comparison]
    assert labels == [
        "full fine-tuning", "LoRA rank 16", "mixed precision", "accumulate x4",
        "LoRA rank 16 + mixed precision",
    ]
    print_plan(result)
    table = capsys.readouterr().out
    assert "* LoRA rank 16 + mixed precision" in table
    assert "gpt2_medium_en: 354,823,168 parameters" in table


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=6, gradient_accumulation_steps=4), "batch_size=6"),
    (dict(batch_size=4, devices=3), "3 data-parallel"),
    (dict(sequence_length=2048), "1024 positions"),
    (dict(lora_rank=0), "lora_rank"),
    (dict(distribution="pipeline"), "pipeline"),
    (dict(batch_size=2.5), "batch_size"),
])
def test_bad_arguments_name_the_cause(kwargs, message):
    arguments = {"batch_size": 4, "sequence_length": 128, **kwargs}
    with pytest.raises(ValueError, match=message):
        kgpt2.plan("gpt2_base_en", **arguments)


def test_unknown_preset_lists_known_names():
    with pytest.raises(PresetError, match="gpt2_tiny_random"):
        kgpt2.plan("gpt3_huge", 1, 8)


def test_cli_prints_the_table(capsys):
    from kgpt2.cli import main

    assert main(["plan", "--preset", "gpt2_large_en", "--batch-size", "8",
                 "--sequence-length", "512", "--lora-rank", "8",
                 "--mixed-precision", "--devices", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 devices, data_parallel" in out
    assert "* LoRA rank 8 + mixed precision" in out
    expected = kgpt2.plan("gpt2_large_en", 8, 512, lora_rank=8,
                          mixed_precision=True, devices=2)
    assert format_bytes(expected.total_bytes) in out


def test_cli_with_only_the_required_flags_plans_full_fine_tuning_on_one_device(capsys):
    from kgpt2.cli import main

    assert main(["plan", "--preset", "gpt2_base_en", "--batch-size", "8", "--sequence-length", "512"]) == 0
    out = capsys.readouterr().out
    assert "batch 8 x 512 tokens per update; 1 device." in out
    assert "* full fine-tuning" in out
    assert format_bytes(kgpt2.plan("gpt2_base_en", 8, 512).total_bytes) in out


def test_cli_prints_the_per_process_column(capsys):
    from kgpt2.cli import main

    assert main(["plan", "--preset", "gpt2_medium_en", "--batch-size", "8",
                 "--sequence-length", "512", "--devices", "4", "--processes", "2",
                 "--distribution", "model_parallel"]) == 0
    out = capsys.readouterr().out
    assert "4 devices, model_parallel, over 2 processes" in out
    expected = kgpt2.plan("gpt2_medium_en", 8, 512, devices=4, processes=2,
                          distribution="model_parallel")
    assert format_bytes(expected.process_bytes) in out


def test_cli_bad_input_is_a_clear_error(capsys):
    from kgpt2.cli import main

    assert main(["plan", "--preset", "gpt2_base_en", "--batch-size", "3",
                 "--sequence-length", "64", "--gradient-accumulation-steps", "2"]) == 1
    assert "kgpt2 plan: error: batch_size=3" in capsys.readouterr().err
