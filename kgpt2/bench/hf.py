"""The HF transformers (PyTorch) peer, measured in the same session.

kgpt2 does not depend on torch: the peer is an outside script
(`hf_generate.py`, same protocol) run with an interpreter that has torch and
transformers. Its rows are renamed to kgpt2's fields so that one table and
one chart hold both, and the torch and transformers versions it reports go
into the report (`BenchReport.hf_env`): the peer's speed depends on them.
Its steady figure is the fastest steady call, so it fills both `steady_*`
and `best_*`; its JSON rounds seconds to 1 ms, and kgpt2 recomputes tokens/s
from those seconds.
"""

import json
import logging
import os
import subprocess
import tempfile

from kgpt2.bench.generation import generation_row
from kgpt2.bench.settings import PROMPT_TOKEN_IDS
from kgpt2.bench.training import training_row
from kgpt2.errors import InputError
from kgpt2.errors import MissingFileError

logger = logging.getLogger("kgpt2")


def check_compare_hf(compare_hf, settings):
    """Return `(python, script)` of the peer, or `(None, None)` without one.

    Raises:
        kgpt2.errors.MissingFileError: the interpreter or the script is missing.
        kgpt2.errors.InputError: a malformed pair, or a prompt length the
            peer does not use.

    Example:
    ```python
    from kgpt2.bench.hf import check_compare_hf

    print(check_compare_hf(None, {"prompt_length": 4}))  # (None, None)
    ```
    """
    if compare_hf is None:
        return None, None
    if isinstance(compare_hf, (str, os.PathLike)) or len(compare_hf) != 2:
        raise InputError(
            "compare_hf must be (python, script): the interpreter that has torch "
            "and transformers, and the path of hf_generate.py."
        )
    python, script = (str(part) for part in compare_hf)
    if not os.path.isfile(python) or not os.access(python, os.X_OK):
        raise MissingFileError(f"compare_hf: '{python}' is not an executable Python interpreter.")
    if not os.path.isfile(script):
        raise MissingFileError(f"compare_hf: the HF peer script '{script}' does not exist.")
    if settings["prompt_length"] != len(PROMPT_TOKEN_IDS):
        raise InputError(
            f"compare_hf needs prompt_length={len(PROMPT_TOKEN_IDS)}: the HF peer script "
            f"always uses the {len(PROMPT_TOKEN_IDS)}-token prompt, got "
            f"prompt_length={settings['prompt_length']}."
        )
    return python, script


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
        precision="float32",
    )


def run_hf_peer(python, script, settings):
    """Run the HF peer script with `settings`; return `{"env", "results"}`.

    `env` holds the torch and transformers versions the peer reports, plus
    the interpreter and script that ran it. The peer's output lines go to
    the "kgpt2" logger as they come.

    Raises:
        RuntimeError: the script failed (its output is printed above).

    Example:
    ```python
    from kgpt2.bench.hf import run_hf_peer

    # PYTHON: a virtual environment with torch and transformers installed.
    peer = run_hf_peer("PYTHON", "hf_generate.py",
                       dict(batch_sizes=[1], samplers=["greedy"], new_tokens=8, train=None))
    print(peer["env"]["torch"], peer["results"][0]["impl"])
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
                logger.info("  hf: %s", line.rstrip())
        if peer.returncode != 0 or not os.path.exists(output):
            raise RuntimeError(
                f"The HF peer script failed (exit status {peer.returncode}): "
                f"{' '.join(command)}"
            )
        with open(output, encoding="utf-8") as file:
            peer = json.load(file)
    env = {
        "torch": peer["env"].get("torch"),
        "transformers": peer["env"].get("transformers"),
        **peer["env"],
        "python": python,
        "script": script,
    }
    return {"env": env, "results": [hf_row(row) for row in peer["results"]]}
