"""`kgpt2.plan`: will this fine-tuning run fit? Bytes per device, offline.

The estimate adds up four parts of one Adam training step of a KerasHub
`GPT2CausalLM` on JAX/XLA:

- parameters: every variable in float32 (Keras keeps float32 variables even
  under mixed precision), plus a 16-bit working copy of each weight with
  mixed precision;
- gradients: one float32 gradient per trainable weight; when accumulating,
  also Keras' float32 accumulator and the copies XLA makes around the
  conditional update (`ACCUMULATION_UPDATE_COPIES`);
- optimizer state: Adam's two float32 moments per trainable weight;
- activations: what backprop keeps per token (see `SAVED_PER_LAYER`) plus
  the logits and loss buffers, for one micro-batch.

Adding the parts up counts every gradient as live at once; XLA frees each
one once its update is applied, so XLA's own plan for the step comes in a
little lower. A fifth part, the runtime, is what a training process holds
besides those buffers, measured by `benchmarks/plan_memory.py` (JAX, CPU):

- the framework: resident memory once JAX, Keras, KerasHub and TensorFlow
  are imported and the JAX client is started (`FRAMEWORK_BYTES`);
- compiled programs and Keras's Python objects (`PROGRAM_BYTES`);
- allocator slack: freed copies of the weights made while building,
  casting and updating them, which the allocator keeps
  (`SLACK_PER_PARAMETER_BYTE` of the parameter bytes);
- in a group of processes, the group's own buffers and programs
  (`PROCESS_GROUP_BYTES`, once per process).

The total is then at or above the measured peak of a whole process (at
most 20% above, on the configurations of docs/benchmarks.md). On a GPU the framework
part is host memory, and the CUDA context and XLA's allocator reserve take
its place on the device.
"""

import dataclasses

from kgpt2.errors import InputError
from kgpt2.presets import gpt2_layout
from kgpt2.presets.catalog import OFFICIAL_PRESETS
from kgpt2.presets.catalog import RANDOM_PRESETS
from kgpt2.presets.catalog import backbone_config
from kgpt2.presets.errors import PresetError
from kgpt2.presets.gpt2_layout import DISTRIBUTIONS
from kgpt2.presets.gpt2_weights import count_parameters
from kgpt2.presets.gpt2_weights import gpt2_weights

ADAM_MOMENTS = 2
DEFAULT_COMPARISON_LORA_RANK = 8

# What backprop keeps per token in each of keras_hub's TransformerDecoder
# layers (pre-layer-norm, dropout on), in units of hidden_dim values. The
# split matters under model_parallel: the first group lives on the sharded
# side of the Megatron layout, the second is replicated on every device.
# Counting the tensors gives 22; XLA's buffer assignment on CPU keeps about
# 26 (measured on gpt2_base_random, benchmarks/plan_memory.py).
SAVED_PER_LAYER = {
    "sharded": 4 + 12,  # q, k, v, context; 4h pre-GELU, GELU out, GELU temps
    "replicated": 10,  # layer-norm ins/outs, residuals, dropout masks
}
# Attention scores per head and key position: raw, masked, softmax, dropout
# mask and dropped probabilities.
SCORE_COPIES = 5
# Vocabulary-sized buffers per token: logits, log-softmax, their gradient and
# one XLA temporary. With the tied embedding frozen (LoRA) one fewer.
LOGIT_COPIES = 4
# Token/position embedding outputs, embedding dropout, final layer norm.
EMBEDDING_TERMS = 4
# Keras accumulates gradients inside an `ops.cond`, whose update branch XLA
# cannot run in place: it keeps about two more trainable-sized float32
# buffers at the update (3.2x the gradient size measured on
# gpt2_base_random), on top of the gradient and Keras' accumulator.
ACCUMULATION_UPDATE_COPIES = 2
# The runtime (see the module docstring), measured on CPU with
# benchmarks/plan_memory.py: the framework's resident memory after import
# (VmRSS with the JAX client started), the rest of the gap between the
# measured peak and the four parts above on gpt2_tiny_random (compiled step,
# Keras objects), and the part of the gap that grows with the weights
# (largest ratio over gpt2_base_random's configurations, rounded up).
FRAMEWORK_BYTES = 940 * 2**20
PROGRAM_BYTES = 200 * 2**20
SLACK_PER_PARAMETER_BYTE = 0.8
# A process of a group (`kgpt2.connect_processes`) holds more: Gloo's and
# the coordination client's buffers, the layout and gathering programs.
# The largest gap between the measured peak and the plan without it, over
# `benchmarks/plan_memory.py --processes` (gpt2_base_random, 2 processes),
# rounded up.
PROCESS_GROUP_BYTES = 320 * 2**20


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per device for one training configuration."""

    label: str
    lora_rank: int | None
    mixed_precision: bool
    gradient_accumulation_steps: int
    micro_batch_size: int
    parameters: int
    trainable_parameters: int
    parameter_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    activation_bytes: int
    runtime_bytes: int
    devices_per_process: int = 1
    processes: int = 1

    @property
    def total_bytes(self):
        return (self.parameter_bytes + self.gradient_bytes
                + self.optimizer_bytes + self.activation_bytes + self.runtime_bytes)

    @property
    def process_bytes(self):
        """Bytes one process holds: its devices' buffers and one runtime.

        On CPU devices, where a device's buffers are the process's memory,
        this is the process's peak; on accelerators each device holds
        `total_bytes` and the host the runtime's framework part.
        """
        buffers = self.total_bytes - self.runtime_bytes
        return self.devices_per_process * buffers + runtime_bytes(
            self.devices_per_process * self.parameter_bytes, self.processes)


@dataclasses.dataclass(frozen=True)
class MemoryPlan(MemoryEstimate):
    """The estimate for the requested options, with the alternatives beside it.

    `comparison` holds full fine-tuning, LoRA, mixed precision and gradient
    accumulation at the same batch, sequence length and devices (`kgpt2
    plan` prints them as a table).
    """

    preset: str = ""
    batch_size: int = 0
    sequence_length: int = 0
    devices: int = 1
    distribution: str | None = None
    comparison: tuple = ()


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}.")


def _resolve_config(preset):
    if preset in RANDOM_PRESETS or preset in OFFICIAL_PRESETS:
        return backbone_config(preset)
    known = ", ".join([*OFFICIAL_PRESETS, *RANDOM_PRESETS])
    raise PresetError(f"kgpt2.plan knows the shapes of {known}; got '{preset}'.")


def _check_arguments(config, batch_size, sequence_length, lora_rank,
                     gradient_accumulation_steps, devices, distribution, processes):
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("sequence_length", sequence_length)
    _check_positive_int("gradient_accumulation_steps", gradient_accumulation_steps)
    _check_positive_int("devices", devices)
    _check_positive_int("processes", processes)
    if devices % processes:
        raise InputError(
            f"devices={devices} (all processes' together) must divide evenly among "
            f"processes={processes}: each process drives the same number of devices."
        )
    if lora_rank is not None:
        _check_positive_int("lora_rank", lora_rank)
        if lora_rank > config["hidden_dim"]:
            # A rank past the hidden size adds parameters and no expressiveness.
            raise InputError(
                f"lora_rank={lora_rank} is more than the model's hidden size "
                f"({config['hidden_dim']}); use lora_rank <= {config['hidden_dim']} "
                "(4 to 64 is usual)."
            )
    if sequence_length > config["max_sequence_length"]:
        raise InputError(
            f"sequence_length={sequence_length} is longer than GPT-2's "
            f"{config['max_sequence_length']} positions."
        )
    if distribution not in (None, *DISTRIBUTIONS):
        raise InputError(
            f"distribution must be None or one of {', '.join(DISTRIBUTIONS)}; "
            f"got {distribution!r}."
        )
    replicas = devices if distribution == "data_parallel" else 1
    if batch_size % (gradient_accumulation_steps * replicas):
        raise InputError(
            f"batch_size={batch_size} must split evenly into "
            f"gradient_accumulation_steps={gradient_accumulation_steps} micro-"
            f"batches on each of {replicas} data-parallel device(s)."
        )
    if distribution == "model_parallel":
        gpt2_layout.model_parallel_axes(config, devices)  # raises if it can't split


def _per_device_elements(weights, axes_by_pattern, shards):
    """Elements of every weight on one device, and of its trainable ones."""
    total = trainable = 0
    for weight in weights:
        axes = gpt2_layout.axes_for(weight.path, axes_by_pattern)
        split = shards if axes and gpt2_layout.MODEL_AXIS in axes else 1
        total += weight.size // split
        trainable += weight.size // split if weight.trainable else 0
    return total, trainable


def _activation_bytes(config, tokens, sequence_length, shards, scores_split,
                      lora, mixed_precision):
    """Bytes backprop keeps for `tokens` tokens on one device."""
    value_bytes = 2 if mixed_precision else 4
    hidden = config["hidden_dim"]
    per_layer = (
        SAVED_PER_LAYER["sharded"] * hidden / shards
        + SAVED_PER_LAYER["replicated"] * hidden
        + SCORE_COPIES * config["num_heads"] * sequence_length
        / (shards if scores_split else 1)
    ) * value_bytes
    logit_copies = LOGIT_COPIES - 1 if lora else LOGIT_COPIES
    # Under mixed precision the logits come out in 16 bits and the loss
    # upcasts them: the other copies stay float32.
    logits = config["vocabulary_size"] * (
        value_bytes + (logit_copies - 1) * 4)
    per_token = (config["num_layers"] * per_layer + logits
                 + EMBEDDING_TERMS * hidden * value_bytes)
    return int(tokens * per_token)


def _estimate(label, config, batch_size, sequence_length, lora_rank,
              mixed_precision, gradient_accumulation_steps, devices,
              distribution, processes):
    weights = gpt2_weights(config, lora_rank)
    if distribution == "model_parallel":
        shards, replicas = devices, 1
        axes = gpt2_layout.model_parallel_axes(config, shards)
        scores_split = gpt2_layout.attention_scores_split(config, shards)
    else:
        shards, replicas, axes, scores_split = 1, devices, {}, True
    elements, trainable = _per_device_elements(weights, axes, shards)
    micro_batch = batch_size // (gradient_accumulation_steps * replicas)
    accumulating = gradient_accumulation_steps > 1
    accumulators = (1 + ACCUMULATION_UPDATE_COPIES) * trainable if accumulating else 0
    return dict(
        label=label,
        lora_rank=lora_rank,
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=gradient_accumulation_steps,
        micro_batch_size=micro_batch,
        parameters=count_parameters(config, lora_rank),
        trainable_parameters=sum(w.size for w in weights if w.trainable),
        parameter_bytes=elements * (6 if mixed_precision else 4),
        runtime_bytes=runtime_bytes(elements * (6 if mixed_precision else 4), processes),
        gradient_bytes=4 * (trainable + accumulators),
        optimizer_bytes=4 * ADAM_MOMENTS * trainable,
        activation_bytes=_activation_bytes(
            config, micro_batch * sequence_length, sequence_length, shards,
            scores_split, lora_rank is not None, mixed_precision),
        devices_per_process=devices // processes,
        processes=processes,
    )


def runtime_bytes(parameter_bytes, processes=1):
    """The runtime's own memory in a training process holding `parameter_bytes` of weights.

    Framework after import + compiled programs + allocator slack (see the
    module docstring for how each was measured), and in a group of
    `processes` > 1 the group's own buffers and programs.

    Example:
    ```python
    from kgpt2.presets.memory import format_bytes
    from kgpt2.training.memory_plan import runtime_bytes

    print(format_bytes(runtime_bytes(0)))  # 1.11 GiB
    ```
    """
    group = PROCESS_GROUP_BYTES if processes > 1 else 0
    return int(FRAMEWORK_BYTES + PROGRAM_BYTES + group + SLACK_PER_PARAMETER_BYTE * parameter_bytes)


def _label(lora_rank, mixed_precision, gradient_accumulation_steps):
    parts = []
    if lora_rank is not None:
        parts.append(f"LoRA rank {lora_rank}")
    if mixed_precision:
        parts.append("mixed precision")
    if gradient_accumulation_steps > 1:
        parts.append(f"accumulate x{gradient_accumulation_steps}")
    return " + ".join(parts) or "full fine-tuning"


def _comparison_options(batch_size, replicas, lora_rank, mixed_precision,
                        gradient_accumulation_steps):
    """Full, LoRA, mixed precision, accumulation, and what was asked for."""
    rank = lora_rank or DEFAULT_COMPARISON_LORA_RANK
    steps = gradient_accumulation_steps
    if steps == 1:  # pick a split the batch allows, preferring 4
        steps = next((n for n in (4, 2) if batch_size % (n * replicas) == 0), 1)
    options = [(None, False, 1), (rank, False, 1), (None, True, 1)]
    if steps > 1:
        options.append((None, False, steps))
    options.append((lora_rank, mixed_precision, gradient_accumulation_steps))
    return list(dict.fromkeys(options))  # drop the requested one if repeated


def plan(
    preset,
    batch_size,
    sequence_length,
    lora_rank=None,
    mixed_precision=False,
    gradient_accumulation_steps=1,
    devices=1,
    distribution=None,
    processes=1,
):
    """Estimate the memory per device (and per process) of fine-tuning a GPT-2 preset with Adam.

    Works offline for the five official presets and the two built-in random
    ones: only their shapes are needed.

    Args:
        preset: a preset name (`kgpt2 presets` lists them).
        batch_size: sequences per optimizer update, over all devices.
        sequence_length: tokens per sequence (at most 1024).
        lora_rank: plan for `backbone.enable_lora(lora_rank)` (only LoRA
            factors and the query/value biases train).
        mixed_precision: plan for a `mixed_bfloat16`/`mixed_float16` policy.
        gradient_accumulation_steps: split each batch into this many
            micro-batches (Keras' `optimizer(gradient_accumulation_steps=)`).
        devices: how many devices share the work.
        distribution: "data_parallel" (replicate weights, split the batch;
            the default when `devices > 1`) or "model_parallel" (shard
            weights with `kgpt2.presets.gpt2_layout`, every device sees the
            whole batch).
        processes: how many processes (hosts, or one per accelerator) the
            `devices` are spread over (`kgpt2.connect_processes`); it must
            divide `devices`. Layouts span every process's devices, so the
            bytes per device don't change; `process_bytes` counts one
            process's devices and its own runtime.

    Returns:
        A `MemoryPlan`: `parameter_bytes`, `gradient_bytes`,
        `optimizer_bytes`, `activation_bytes`, `total_bytes` per device and
        `process_bytes` per process for the requested options, and
        `comparison` with the alternatives.

    Example:
    ```python
    import kgpt2

    result = kgpt2.plan("gpt2_medium_en", batch_size=8, sequence_length=512,
                        lora_rank=8)
    print(result.total_bytes / 2**30, "GiB")
    print([estimate.label for estimate in result.comparison])

    # Two hosts of one 16 GB GPU each, the weights sharded over both:
    two_hosts = kgpt2.plan("gpt2_large_en", batch_size=8, sequence_length=1024,
                           mixed_precision=True, devices=2, processes=2,
                           distribution="model_parallel")
    print(two_hosts.total_bytes / 2**30, "GiB per device")
    ```
    """
    config = _resolve_config(preset)
    if distribution is None and devices > 1:
        distribution = "data_parallel"
    _check_arguments(config, batch_size, sequence_length, lora_rank,
                     gradient_accumulation_steps, devices, distribution, processes)
    shape = dict(config=config, batch_size=batch_size,
                 sequence_length=sequence_length, devices=devices,
                 distribution=distribution, processes=processes)
    replicas = devices if distribution == "data_parallel" else 1
    options = _comparison_options(batch_size, replicas, lora_rank,
                                  mixed_precision, gradient_accumulation_steps)
    comparison = tuple(
        MemoryEstimate(**_estimate(
            _label(rank, mixed, steps), lora_rank=rank, mixed_precision=mixed,
            gradient_accumulation_steps=steps, **shape))
        for rank, mixed, steps in options
    )
    requested = comparison[options.index(
        (lora_rank, mixed_precision, gradient_accumulation_steps))]
    return MemoryPlan(
        **dataclasses.asdict(requested), preset=preset, batch_size=batch_size,
        sequence_length=sequence_length, devices=devices,
        distribution=distribution, comparison=comparison,
    )
