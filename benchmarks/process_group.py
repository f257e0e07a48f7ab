"""Run a benchmark's child phase in fresh processes, as a group on 127.0.0.1.

Shared by benchmarks/plan_memory.py and benchmarks/sharded_load.py: each
starts `python SCRIPT --child ARGUMENTS... PROCESS_ID COORDINATOR` once per
process (one CPU device each, Gloo between them) and reads the JSON each
prints on a `RESULT ` line.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_group(script, arguments, count, timeout_s=1800):
    """Run `count` processes of `script --child *arguments PROCESS_ID COORDINATOR`; return their results."""
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    if count > 1:
        env.pop("XLA_FLAGS", None)  # one CPU device per process
        # gRPC, which the processes connect with, would go through a proxy.
        for variable in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            env.pop(variable, None)
        env.update(JAX_PLATFORMS="cpu", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    coordinator = f"127.0.0.1:{_free_port()}"
    children = [
        subprocess.Popen(
            [sys.executable, str(script), "--child", *arguments, str(process_id), coordinator],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for process_id in range(count)
    ]
    results = []
    try:
        for child in children:
            out, err = child.communicate(timeout=timeout_s)
            lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
            if child.returncode or not lines:
                raise RuntimeError(f"{' '.join(arguments)[:200]} failed:\n{err[-3000:]}")
            results.append(json.loads(lines[-1][len("RESULT "):]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    return results
