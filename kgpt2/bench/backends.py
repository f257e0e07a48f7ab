"""Measure under another Keras backend, in a child process.

Keras fixes its backend when it is first imported, so `kgpt2 bench
--backends jax,tensorflow` measures the running backend in-process and
each other one in a child `python -m kgpt2.bench.backends` with
`KERAS_BACKEND` set; the child writes its part of the report as JSON.
"""

import json
import logging
import os
import subprocess
import sys
import tempfile

import keras

from kgpt2.bench.measure import measure_backend
from kgpt2.errors import Error

logger = logging.getLogger("kgpt2")


def measure_in_subprocess(backend, settings):
    """Run `measure_backend(settings)` under `backend` in a child process.

    The child's progress lines go straight to this process's stdout; its
    stderr (library start-up chatter, or its error) is kept, and only its
    last line is shown, in the error raised when the child fails.

    Returns:
        The child's `{"machine", "model", "results"}`.

    Raises:
        RuntimeError: the child failed; the message ends with the child's
            last line on stderr (its error).

    Example:
    ```python
    from kgpt2.bench.backends import measure_in_subprocess

    part = measure_in_subprocess("tensorflow", dict(
        preset="gpt2_tiny_random", batch_sizes=[1], samplers=["greedy"],
        impls=["keras_hub"], prompt_length=4, new_tokens=4, calls=2,
        train=None, train_steps=7, train_warmup_steps=2))
    print(part["machine"]["backend"])
    ```
    """
    environment = dict(os.environ, KERAS_BACKEND=backend, PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory(prefix="kgpt2-bench-") as folder:
        output = os.path.join(folder, "part.json")
        command = [sys.executable, "-m", "kgpt2.bench.backends", json.dumps(settings), output]
        logger.info("Backend %s: measuring in a subprocess (KERAS_BACKEND=%s)", backend, backend)
        sys.stdout.flush()
        child = subprocess.run(command, env=environment, stderr=subprocess.PIPE,
                               text=True, errors="replace")
        if child.returncode != 0 or not os.path.exists(output):
            lines = child.stderr.strip().splitlines() or ["(it printed nothing on stderr)"]
            raise RuntimeError(
                f"The {backend} benchmark subprocess failed (exit status "
                f"{child.returncode}): {lines[-1]}"
            )
        with open(output, encoding="utf-8") as file:
            return json.load(file)


def _main(argv):
    settings_json, output = argv
    # The parent shows kgpt2's lines as its own progress; the libraries'
    # loggers (JAX's "Unable to initialize backend 'tpu'") stay quiet.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    expected = os.environ.get("KERAS_BACKEND")
    if keras.config.backend() != expected:
        print(f"kgpt2 bench: error: Keras started on {keras.config.backend()}, "
              f"not KERAS_BACKEND={expected}.", file=sys.stderr)
        return 1
    try:
        part = measure_backend(json.loads(settings_json))
    except (Error, ValueError, FileNotFoundError) as error:
        print(f"kgpt2 bench ({expected}): error: {error}", file=sys.stderr)
        return 1
    with open(output, "w", encoding="utf-8") as file:
        json.dump(part, file)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
