"""Load `kgpt2 export --format transformers` output in real transformers; compare logits.

Not a test: torch and transformers are not kgpt2 dependencies. Run it with
an interpreter that has them; it runs kgpt2's side (export + kgpt2's logits
and greedy tokens) in a child process with kgpt2's interpreter:

    python3 -m venv /tmp/hfpeer
    /tmp/hfpeer/bin/pip install torch==2.13.0 transformers==5.24.0 safetensors
    HF_HUB_OFFLINE=1 /tmp/hfpeer/bin/python benchmarks/hf_export_check.py \\
        --kgpt2-python .venv/bin/python --preset gpt2_base_random

For each prompt it prints whether transformers' tokenizer gives kgpt2's token
ids and decodes them back, the max |logit difference| over every position and
vocabulary entry, and whether 16 greedy tokens agree. `--lora` first gives
the model random LoRA adapters under mixed precision, to check that the
export holds the merged float32 weights.
"""

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

PROMPTS = ["Hello, my dog is cute", "The quick brown fox jumps over", " 床前明月光，疑是地上霜。"]
NEW_TOKENS = 16


def kgpt2_side(preset, out_dir, lora):
    """Export `preset` to `out_dir`; write kgpt2's logits and greedy tokens beside it."""
    import numpy as np

    import kgpt2

    lm = kgpt2.load(preset, sequence_length=64)
    if lora:
        kgpt2.compile_lm(lm, steps=1, lora_rank=4, mixed_precision=True)
        rng = np.random.default_rng(0)
        for variable in lm.backbone.trainable_variables:
            if "lora_kernel" in variable.path:
                variable.assign(rng.normal(0, 0.05, variable.shape).astype("float32"))
    kgpt2.export(lm, out_dir, format="transformers")
    if lora:
        # The same LoRA model computing in float32: what the export must match.
        kgpt2.compile_lm(lm, steps=1, lora_rank=4)
    rows = []
    for prompt in PROMPTS:
        ids = np.asarray(lm.preprocessor.tokenizer(prompt)).tolist()
        x = np.asarray([ids])
        logits = np.asarray(lm({"token_ids": x, "padding_mask": np.ones_like(x)}))[0]
        greedy = kgpt2.generation.generate_token_ids(lm, [ids], len(ids) + NEW_TOKENS, sampler="greedy")
        rows.append({"prompt": prompt, "ids": ids, "greedy": greedy[0, len(ids):].tolist()})
        np.save(pathlib.Path(out_dir).parent / f"logits_{len(rows) - 1}.npy", logits)
    (pathlib.Path(out_dir).parent / "kgpt2.json").write_text(json.dumps(rows), "utf-8")


def hf_side(out_dir):
    """Load the export with transformers; compare with what kgpt2 wrote."""
    import numpy as np
    import torch
    import transformers

    model = transformers.GPT2LMHeadModel.from_pretrained(out_dir).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out_dir)
    rows = json.loads((pathlib.Path(out_dir).parent / "kgpt2.json").read_text("utf-8"))
    print(f"transformers {transformers.__version__}, torch {torch.__version__}: "
          f"{type(model).__name__} ({sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{model.dtype}), {type(tokenizer).__name__}")
    worst = 0.0
    for index, row in enumerate(rows):
        ids = tokenizer(row["prompt"])["input_ids"]
        same_ids = ids == row["ids"]
        round_trip = tokenizer.decode(ids) == row["prompt"]
        with torch.no_grad():
            logits = model(torch.tensor([row["ids"]])).logits[0].numpy()
            greedy = model.generate(
                torch.tensor([row["ids"]]), max_new_tokens=NEW_TOKENS, do_sample=False,
                attention_mask=torch.ones(1, len(row["ids"]), dtype=torch.long), pad_token_id=50256,
            )[0, len(row["ids"]):].tolist()
        difference = float(np.abs(logits - np.load(pathlib.Path(out_dir).parent / f"logits_{index}.npy")).max())
        worst = max(worst, difference)
        print(f"{row['prompt']!r}: token ids same={same_ids}, decode round trip={round_trip}, "
              f"max |logit diff|={difference:.2e} over {logits.size:,} logits, "
              f"greedy {NEW_TOKENS} tokens same={greedy == row['greedy'][:len(greedy)]}")
    print(f"worst max |logit diff| = {worst:.2e}")
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kgpt2-python", default=".venv/bin/python")
    parser.add_argument("--preset", default="gpt2_base_random")
    parser.add_argument("--lora", action="store_true")
    parser.add_argument("--kgpt2-side", metavar="OUT_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kgpt2_side:
        kgpt2_side(args.preset, args.kgpt2_side, args.lora)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        out_dir = str(pathlib.Path(folder) / "export")
        command = [args.kgpt2_python, __file__, "--preset", args.preset, "--kgpt2-side", out_dir]
        subprocess.run(command + (["--lora"] if args.lora else []), check=True)
        print(f"preset {args.preset}{' + random LoRA under mixed_bfloat16' if args.lora else ''}")
        hf_side(out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
