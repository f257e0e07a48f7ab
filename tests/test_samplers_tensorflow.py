"""Run the backend-sensitive sampler tests again on TensorFlow.

One subprocess with KERAS_BACKEND=tensorflow (the backend is chosen once per
process): the logits math, the samplers' loops under XLA (via
`generate_step` compiled with `jit_compile=True`, see samplers_reference.py)
checked against numpy decoding and the no-repeat rule, and equality with
KerasHub through `lm.generate`. About 40 s, most of it TensorFlow start-up
and XLA compiles; splitting it would pay the start-up several times.
"""

import os
import pathlib
import subprocess
import sys

TESTS = pathlib.Path(__file__).parent
SELECTION = (
    "requested_backend or numpy or min_p or top_k_never or "
    "(no_repeat_ngram_holds and (top_p or beam or contrastive)) or "
    "(neutral_options_match and (random or beam))"
)


def test_samplers_on_tensorflow_with_xla():
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(TESTS.parent), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:warnings", "-p",
         "no:cacheprovider", str(TESTS / "test_samplers.py"), "-k", SELECTION,
         "-m", "not benchmark"],
        env=env, capture_output=True, text=True, cwd=TESTS.parent,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary
    # The selection must keep selecting: guard against a rename emptying it.
    assert int(summary.split(" passed")[0].split()[-1]) >= 16, summary
