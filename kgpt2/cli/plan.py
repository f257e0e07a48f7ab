"""`kgpt2 plan`: estimate memory per device before fine-tuning."""

from kgpt2.training.distribution import DISTRIBUTIONS


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
    parser.set_defaults(handler=run)


def run(args):
    import kgpt2

    result = kgpt2.plan(
        args.preset,
        batch_size=args.batch_size,
        sequence_length=args.sequence_length,
        lora_rank=args.lora_rank,
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        devices=args.devices,
        distribution=args.distribution,
    )
    print(result.table())
