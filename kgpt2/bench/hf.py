"""The HF transformers (PyTorch) peer, measured in the same session.

kgpt2 does not depend on torch: the peer is an outside script
(`hf_generate.py`, same protocol) run with an interpreter that has torch and
transformers. Its rows are renamed to kgpt2's fields so that one table and
one chart hold both. Its steady figure is the fastest steady call, so it
fills both `steady_*` and `best_*`; its JSON rounds seconds to 1 ms, and
kgpt2 recomputes tokens/s from those seconds.
"""

import json
import os
import subprocess
import tempfile

HF_IMPL = "hf-transformers-torch"


def hf_row(row):
    """Convert one result row of `hf_generate.py` to kgpt2's row fields.

    The peer reports a first and one steady figure, not every call, so
    `call_s` (`step_s` for training) holds those two.

    Example:
    ```python
    from kgpt2.bench.hf import hf_row

    row = hf_row({"what": "generate", "impl": "hf-transformers-torch", "sampler": "greedy",
                  "batch": 8, "new_tokens": 16, "first_call_s": 4.0, "steady_call_s": 2.0,
                  "steady_tok_per_s": 64.0})
    print(row["backend"], row["best_tok_per_s"], row["first_over_steady"])  # torch 64.0 2.0
    ```
    """
    from kgpt2.bench.generation import PROMPT_TOKEN_IDS
    from kgpt2.bench.generation import generation_row
    from kgpt2.bench.training import training_row

    if row["what"] == "generate":
        return generation_row(
            [row["first_call_s"], row["steady_call_s"]],
            batch=row["batch"],
            new_tokens=row["new_tokens"],
            impl=row["impl"],
            backend="torch",
            sampler=row["sampler"],
            prompt_length=len(PROMPT_TOKEN_IDS),
        )
    return training_row(
        [row["first_step_s"], row["steady_step_s"]],
        warmup_steps=1,
        batch=row["batch"],
        sequence_length=row["sequence_length"],
        impl=row["impl"],
        backend="torch",
    )


def run_hf_peer(python, script, settings, print_fn=print):
    """Run the HF peer script with `settings`; return `{"env", "results"}`.

    Raises:
        RuntimeError: the script failed (its output is printed above).

    Example:
    ```python
    from kgpt2.bench.hf import run_hf_peer

    peer = run_hf_peer("/tmp/hfpeer/bin/python", "hf_generate.py",
                       dict(batch_sizes=[1], samplers=["greedy"], new_tokens=8, train=None))
    print(peer["results"][0]["impl"])  # hf-transformers-torch
    ```
    """
    with tempfile.TemporaryDirectory(prefix="kgpt2-hf-") as folder:
        output = os.path.join(folder, "hf.json")
        command = [
            python, script,
            "--batch-sizes", ",".join(str(b) for b in settings["batch_sizes"]),
            "--new-tokens", str(settings["new_tokens"]),
            "--samplers", ",".join(settings["samplers"]),
            "--json", output,
        ]
        if settings.get("train") is not None:
            command += ["--train", ",".join(str(n) for n in settings["train"])]
        # Stream the peer's JSON lines as they come: it runs for minutes.
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as peer:
            for line in peer.stdout:
                print_fn(f"  hf: {line.rstrip()}")
        if peer.returncode != 0 or not os.path.exists(output):
            raise RuntimeError(
                f"The HF peer script failed (exit status {peer.returncode}): "
                f"{' '.join(command)}"
            )
        with open(output, encoding="utf-8") as file:
            peer = json.load(file)
    return {"env": peer["env"], "results": [hf_row(row) for row in peer["results"]]}
