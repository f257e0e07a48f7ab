"""The backend-sensitive tests again, on TensorFlow, in one child process.

The Keras backend is chosen once per process, so one child pytest with
KERAS_BACKEND=tensorflow runs, from three modules:
- test_generation.py: the fast generation path gives KerasHub's tokens;
- test_samplers.py: the logits math, the samplers' loops under XLA (via
  `generate_step` compiled with `jit_compile=True`, see samplers_reference.py)
  against numpy decoding and the no-repeat rule, and equality with KerasHub
  through `lm.generate`;
- test_distribution.py: the `tensorflow_only` tests (a clear error where a
  distribution needs JAX);
- test_training_finetune.py: bfloat16 mixed precision trains with falling loss;
  the float32 step is compiled with XLA and learns what the oneDNN graph step does.
One process pays TensorFlow's start-up once; most of the time is that start-up,
graph tracing and XLA compiles.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

TESTS = pathlib.Path(__file__).parent
# module: (-k selection within it, how many tests it selects: exactly those
# that need checking on TensorFlow, so a new test whose name happens to match
# fails here until it is counted, or renamed)
SELECTIONS = {
    "test_generation.py": ("matches_keras_hub or stop_tokens or no_repeat_ngram", 13),
    # Only what runs Keras ops: argument checks (e.g. of min_p) give the same
    # errors on every backend, and run once, in the JAX process.
    "test_samplers.py": (
        "requested_backend or numpy or min_p_keeps or min_p_sampling or top_k_never or "
        "(no_repeat_ngram_holds and (top_p or beam or contrastive)) or "
        "(neutral_options_match and (random or beam))",
        16,
    ),
    "test_distribution.py": ("tensorflow_only", 1),
    "test_training_finetune.py": ("mixed_precision_trains or float32_step_is_xla", 2),
}


@pytest.mark.slow
def test_backend_sensitive_tests_pass_on_tensorflow():
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS.parent), env.get("PYTHONPATH")]))
    selection = " or ".join(f"({module} and ({expression}))"
                            for module, (expression, _) in SELECTIONS.items())
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:warnings", "-p", "no:cacheprovider",
         *[str(TESTS / module) for module in SELECTIONS], "-k", selection],
        env=env, capture_output=True, text=True, cwd=TESTS.parent, timeout=900,
    )
    log = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, log
    for module, (_, count) in SELECTIONS.items():
        passed = re.findall(rf"^tests/{re.escape(module)}::\S+ PASSED", result.stdout, re.M)
        # A rename must not empty a selection, nor a new name widen it.
        assert len(passed) == count, f"{module}: {len(passed)} passed\n{log}"
    assert not re.search(r" (FAILED|ERROR|SKIPPED)\b", result.stdout), log
