"""The generation path on TensorFlow: same tokens as KerasHub there too.

One subprocess with KERAS_BACKEND=tensorflow (the backend is chosen once per
process) runs the KerasHub-equality tests of test_generation.py. About a
minute, most of it TensorFlow start-up and graph tracing; one process pays
the start-up once.
"""

import os
import pathlib
import subprocess
import sys

TESTS = pathlib.Path(__file__).parent


def test_generation_matches_keras_hub_on_tensorflow():
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS.parent), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:warnings", "-p", "no:cacheprovider",
         str(TESTS / "test_generation.py"), "-k",
         "matches_keras_hub or stop_tokens or no_repeat_ngram or layout",
         "-m", "not benchmark"],
        env=env, capture_output=True, text=True, cwd=TESTS.parent,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary
    # The selection must keep selecting: guard against a rename emptying it.
    assert int(summary.split(" passed")[0].split()[-1]) >= 13, summary
