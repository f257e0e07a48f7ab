"""`kgpt2 plan`: estimate memory per device before fine-tuning."""

import kgpt2
from kgpt2.cli.tables import print_lines
from kgpt2.cli.tables import print_table
from kgpt2.presets.gpt2_layout import DISTRIBUTIONS
from kgpt2.presets.memory import format_bytes


def register(subparsers):
    parser = subparsers.add_parser(
        "plan",
        help="estimate training memory per device (full, LoRA, mixed "
        "precision, gradient accumulation)",
        description="Estimate parameter, gradient, Adam-state and activation "
        "memory per device for fine-tuning a GPT-2 preset, comparing full "
        "fine-tuning with LoRA, mixed precision and gradient accumulation. "
        "Offline: only the preset's shape is needed.",
    )
    parser.add_argument("--preset", required=True,
                        help="a preset name (see `kgpt2 presets`)")
    parser.add_argument("--batch-size", type=int, required=True,
                        help="sequences per optimizer update, all devices")
    parser.add_argument("--sequence-length", type=int, required=True)
    parser.add_argument("--lora-rank", type=int, default=None)
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--distribution", choices=DISTRIBUTIONS,
                        default=None, help="default: data_parallel when --devices > 1")
    parser.add_argument("--processes", type=int, default=1,
                        help="processes the --devices are spread over (hosts, or one per "
                        "accelerator); adds a per-process column")
    parser.set_defaults(handler=run)


def run(args):
    result = kgpt2.plan(
        args.preset,
        batch_size=args.batch_size,
        sequence_length=args.sequence_length,
        lora_rank=args.lora_rank,
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        devices=args.devices,
        distribution=args.distribution,
        processes=args.processes,
    )
    print_plan(result)


def print_plan(result):
    """Print a `kgpt2.plan` result: every compared option, the requested one starred."""
    where = (f"{result.devices} devices, {result.distribution}"
             if result.devices > 1 else "1 device")
    if result.processes > 1:
        where += f", over {result.processes} processes"
    print_lines(
        f"{result.preset}: {result.comparison[0].parameters:,} parameters; batch "
        f"{result.batch_size} x {result.sequence_length} tokens per update; "
        f"{where}. Adam, bytes per device:"
    )
    columns = ["option", "micro-batch", "trainable", "parameters", "gradients",
               "Adam moments", "activations", "runtime", "total"]
    if result.processes > 1:
        columns.append("per process")
    rows = []
    for estimate in result.comparison:
        marker = "*" if estimate.label == result.label else " "
        rows.append([
            f"{marker} {estimate.label}",
            estimate.micro_batch_size,
            f"{estimate.trainable_parameters:,}",
            format_bytes(estimate.parameter_bytes),
            format_bytes(estimate.gradient_bytes),
            format_bytes(estimate.optimizer_bytes),
            format_bytes(estimate.activation_bytes),
            format_bytes(estimate.runtime_bytes),
            format_bytes(estimate.total_bytes),
        ] + ([format_bytes(estimate.process_bytes)] if result.processes > 1 else []))
    print_table(None, columns, rows, numeric=set(columns[1:]))
    print_lines(
        "* = the options asked for. micro-batch: sequences per device per forward "
        "pass. runtime: the framework, compiled programs and allocator slack "
        "of a training process, measured on CPU (totals are 0-20% above measured "
        "process peaks, see benchmarks/plan_memory.py)."
        + (" per process: its devices' buffers and one runtime (a process's peak on CPU)."
           if result.processes > 1 else "")
    )
