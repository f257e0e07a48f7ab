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

    The child's progress lines go straight to this process's stdout/stderr.

    Returns:
        The child's `{"machine", "model", "results"}`.

    Raises:
        RuntimeError: the child failed (its own error is printed above).

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
        status = subprocess.run(command, env=environment).returncode
        if status != 0 or not os.path.exists(output):
            raise RuntimeError(
                f"The {backend} benchmark subprocess failed (exit status {status}); "
                "its error is printed above."
            )
        with open(output, encoding="utf-8") as file:
            return json.load(file)


def _main(argv):
    settings_json, output = argv
    # The parent shows these lines as its own progress.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
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
