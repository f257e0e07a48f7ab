#!/usr/bin/env python3
"""kgpt2's generation against HF transformers (PyTorch), as ratios from one session.

Alternates, `--repeats` times, the HF peer script (`../shared/bench/
hf_generate.py`, its own protocol: 3 calls, steady = the better of calls 2
and 3) with `generation_speed.py` (KerasHub's `generate` and kgpt2's path,
interleaved in one process), so that both see the same machine load. For
each implementation and batch size it keeps the best steady figure over the
repeats and prints the ratios against HF; issue 6's bar is kgpt2 >= 1.5x HF
at batch 1 and >= 2x at batch 8.

Needs the peer's virtual environment (see the header of hf_generate.py):
  python3 -m venv /tmp/hfpeer && /tmp/hfpeer/bin/pip install torch==2.13.0 transformers
Run (from the repository root):
  PYTHONPATH=$PWD python benchmarks/generation_vs_hf.py --repeats 2
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hf-python", default="/tmp/hfpeer/bin/python")
    parser.add_argument("--hf-script", default=str(HERE.parent.parent / "shared/bench/hf_generate.py"))
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per generation_speed run")
    parser.add_argument("--json", help="write every figure to this file")
    args = parser.parse_args(argv)

    best = {}  # (implementation, batch) -> best steady tokens/s
    runs = []
    for _ in range(args.repeats):
        hf = subprocess.run(
            [args.hf_python, args.hf_script, "--batch-sizes", args.batch_sizes,
             "--new-tokens", str(args.new_tokens)],
            capture_output=True, text=True,
        )
        if hf.returncode:
            sys.exit(f"HF peer failed:\n{hf.stderr[-3000:]}")
        for line in hf.stdout.splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                runs.append(row)
                key = ("hf_transformers", row["batch"])
                best[key] = max(best.get(key, 0), row["steady_tok_per_s"])
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            ours = subprocess.run(
                [sys.executable, str(HERE / "generation_speed.py"), "--variants",
                 "keras_hub,kgpt2", "--batch-sizes", args.batch_sizes, "--new-tokens",
                 str(args.new_tokens), "--rounds", str(args.rounds), "--json", out.name],
                capture_output=True, text=True, env=dict(os.environ),
            )
            if ours.returncode:
                sys.exit(f"generation_speed failed:\n{ours.stderr[-3000:]}")
            for row in json.load(open(out.name))["rows"]:
                runs.append(row)
                key = (row["variant"], row["batch"])
                best[key] = max(best.get(key, 0), row["best_tok_per_s"])
        print(f"after repeat {_ + 1}: " + ", ".join(
            f"{name}@{batch} {value:.1f}" for (name, batch), value in sorted(best.items())),
            flush=True)
    print(f"\n{'implementation':16s} {'batch':>5s} {'best tok/s':>11s} {'x HF':>6s}")
    for (name, batch), value in sorted(best.items(), key=lambda item: (item[0][1], item[0][0])):
        ratio = value / best[("hf_transformers", batch)]
        print(f"{name:16s} {batch:5d} {value:11.1f} {ratio:6.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"best": {f"{n}@{b}": v for (n, b), v in best.items()}, "runs": runs},
                      handle, indent=1)


if __name__ == "__main__":
    main()
