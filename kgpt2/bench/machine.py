"""What a benchmark ran on: CPU, cores, load, backend and library versions."""

import os
import pathlib
import platform
import sys
import time
from importlib import metadata

import jax
import keras
import numpy as np

import kgpt2
from kgpt2.compilation_cache import enable_compilation_cache

# Every distribution whose version changes the numbers.
VERSIONED_PACKAGES = ("keras", "keras-hub", "jax", "jaxlib", "tensorflow", "numpy")


def cpu_model():
    """Return the CPU model name (from /proc/cpuinfo on Linux).

    Example:
    ```python
    from kgpt2.bench.machine import cpu_model

    # The processor's name, e.g. Intel(R) Xeon(R) Processor.
    print(cpu_model())
    ```
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _memory_gb():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        return None


def matvec_bandwidth_gb_s(rows=50257, columns=768, repeats=30):
    """Measure the memory bandwidth a float32 matrix-vector product reaches.

    The default matrix is GPT-2's token embedding (154 MB, far larger than
    any cache), multiplied by a hidden state as the logits layer does at
    batch 1. Batch-1 generation reads every weight once per token, so this
    bandwidth divided by the model's weight bytes is its tokens/s ceiling.
    The product runs compiled by XLA (through JAX, a kgpt2 dependency, on any
    Keras backend); the fastest of `repeats` runs counts, since a ceiling is
    what the machine reaches when nothing else gets in the way.

    Example:
    ```python
    from kgpt2.bench.machine import matvec_bandwidth_gb_s

    print(matvec_bandwidth_gb_s(rows=4096, columns=256, repeats=3) > 0)  # True
    ```
    """
    cpu = jax.devices("cpu")[0]
    matrix = np.random.default_rng(0).standard_normal((rows, columns), dtype=np.float32)
    matrix_on_device = jax.device_put(matrix, cpu)
    vector = jax.device_put(np.ones(columns, np.float32), cpu)
    product = jax.jit(lambda m, v: m @ v)
    product(matrix_on_device, vector).block_until_ready()  # compile once
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        product(matrix_on_device, vector).block_until_ready()
        seconds.append(time.perf_counter() - start)
    return matrix.nbytes / min(seconds) / 1e9


def compilation_cache_state():
    """Return JAX's persistent compilation cache folder and its file count.

    kgpt2's generation turns the cache on (see
    `kgpt2.compilation_cache.enable_compilation_cache`); with files in it, a first
    call may load its program from disk instead of compiling, so a report
    says which case its first-call figures are. None when off or not JAX.

    Example:
    ```python
    from kgpt2.bench.machine import compilation_cache_state

    # e.g. {'folder': '~/.cache/kgpt2/jax', 'files_at_start': 12}
    print(compilation_cache_state())
    ```
    """
    folder = enable_compilation_cache()
    if folder is None:
        return None
    path = pathlib.Path(folder)
    files = sum(1 for entry in path.rglob("*") if entry.is_file()) if path.is_dir() else 0
    return {"folder": str(folder), "files_at_start": files}


def machine_info(bandwidth=True):
    """Return a dict describing this machine and software, for a report.

    Example:
    ```python
    from kgpt2.bench.machine import machine_info

    info = machine_info(bandwidth=False)
    print(info["backend"], info["cores"] >= 1)  # jax True
    ```
    """
    try:
        usable_cores = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cores = os.cpu_count()
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores,
        "memory_gb": _memory_gb(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "backend": keras.config.backend(),
        "versions": {package: _version(package) for package in VERSIONED_PACKAGES},
    }
    info["versions"]["kgpt2"] = kgpt2.__version__
    info["compilation_cache"] = compilation_cache_state()
    if bandwidth:
        info["matvec_bandwidth_gb_s"] = matvec_bandwidth_gb_s()
    return info
