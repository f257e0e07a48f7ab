"""How many devices of 16, 40 and 80 GB each official preset needs, from `kgpt2.plan`.

    PYTHONPATH=. python benchmarks/scaling_table.py

For batch 8 x 1024 tokens per update, with mixed precision and gradient
accumulation over 8 micro-batches of one sequence (the smallest activations),
full fine-tuning and LoRA rank 8: the fewest devices (1, 2, 4, 5, 8, 10 or 16;
model_parallel beyond one) whose per-device plan fits. Prints a Markdown table.
"""

import kgpt2
from kgpt2.presets.catalog import OFFICIAL_PRESETS

GB = 10**9
DEVICE_SIZES = (16, 40, 80)
DEVICE_COUNTS = (1, 2, 4, 5, 8, 10, 16)
SHAPE = dict(batch_size=8, sequence_length=1024, mixed_precision=True, gradient_accumulation_steps=8)
OPTIONS = {"full": {}, "LoRA 8": {"lora_rank": 8}}


def fewest_devices(preset, size_gb, options):
    """`(devices, GiB per device)` of the smallest layout that fits, or None."""
    for devices in DEVICE_COUNTS:
        distribution = "model_parallel" if devices > 1 else None
        try:
            plan = kgpt2.plan(preset, devices=devices, distribution=distribution, **SHAPE, **options)
        except ValueError:
            continue  # this preset's heads don't split that many ways
        if plan.total_bytes <= size_gb * GB:
            return devices, plan.total_bytes / 2**30
    return None


def main():
    print("| preset | parameters | fine-tuning | " + " | ".join(f"{s} GB devices" for s in DEVICE_SIZES) + " |")
    print("|---|---:|---|" + "---:|" * len(DEVICE_SIZES))
    for preset in OFFICIAL_PRESETS:
        parameters = kgpt2.plan(preset, **SHAPE).parameters
        for label, options in OPTIONS.items():
            cells = []
            for size in DEVICE_SIZES:
                found = fewest_devices(preset, size, options)
                cells.append("no layout up to 16" if found is None else f"{found[0]} ({found[1]:.1f} GiB each)")
            print(f"| {preset} | {parameters / 1e6:,.0f}M | {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
