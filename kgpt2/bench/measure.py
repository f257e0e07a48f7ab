"""Measure generation and training with the Keras backend of this process.

`measure_backend` is one backend's part of a `kgpt2.bench.run` report:
it is called in this process for the running backend, and by
`kgpt2.bench.backends` in a child process for any other.
"""

import logging

import keras
import numpy as np

from kgpt2.bench.generation import bench_generation
from kgpt2.bench.machine import machine_info
from kgpt2.bench.peak import matmul_peak
from kgpt2.bench.peak import training_shapes
from kgpt2.bench.settings import check_settings
from kgpt2.bench.training import bench_training
from kgpt2.presets import load

logger = logging.getLogger("kgpt2")


def model_info(lm, preset):
    """Return the preset name, parameter count, shape, dtype and weight bytes of `lm`.

    Example:
    ```python
    import kgpt2
    from kgpt2.bench.measure import model_info

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    print(model_info(lm, "gpt2_tiny_random")["dtype"])  # float32
    ```
    """
    backbone = lm.backbone
    weights = backbone.weights
    return {
        "preset": str(preset),
        "params": int(sum(np.prod(w.shape) for w in weights)),
        "layers": backbone.num_layers,
        "hidden_dim": backbone.hidden_dim,
        "intermediate_dim": backbone.intermediate_dim,
        "vocabulary_size": backbone.vocabulary_size,
        "weight_bytes": int(sum(np.prod(w.shape) * np.dtype(w.dtype).itemsize for w in weights)),
        "dtype": str(weights[0].dtype),
    }


def measure_backend(settings):
    """Measure generation (and training) with the running Keras backend.

    `settings` are those `kgpt2.bench.settings.check_settings` accepts.
    Progress lines go to the "kgpt2" logger.

    With training, the matrix-multiply peak of this backend's library at
    the step's forward shapes, in the step's precision (bfloat16 under
    mixed precision, else float32), is measured right after it (see
    `kgpt2.bench.peak`), under the same load.

    Returns:
        This backend's part of a report: `{"machine", "model", "results"}`,
        and `"matmul_peak"` (a `matmul_peak` result, or None without training).

    Example:
    ```python
    from kgpt2.bench.measure import measure_backend

    part = measure_backend(dict(
        preset="gpt2_tiny_random", batch_sizes=[1], samplers=["greedy"],
        impls=["kgpt2"], prompt_length=4, new_tokens=4, calls=2,
        train=None, train_steps=7, train_warmup_steps=2))
    print(part["results"][0]["steady_tok_per_s"], "tokens/s")
    ```
    """
    settings = check_settings(settings)
    backend = keras.config.backend()
    logger.info("Backend %s: measuring the machine and loading %s", backend, settings["preset"])
    machine = machine_info()
    options = {} if settings["dtype"] is None else {"dtype": settings["dtype"]}
    lm = load(settings["preset"], **options)
    results = bench_generation(
        lm,
        impls=settings["impls"],
        samplers=settings["samplers"],
        batch_sizes=settings["batch_sizes"],
        prompt_length=settings["prompt_length"],
        new_tokens=settings["new_tokens"],
        calls=settings["calls"],
    )
    model = model_info(lm, settings["preset"])
    peak = None
    if settings["train"] is not None:
        batch_size, sequence_length = settings["train"]
        results.append(
            bench_training(
                lm,
                batch_size=batch_size,
                sequence_length=sequence_length,
                steps=settings["train_steps"],
                warmup_steps=settings["train_warmup_steps"],
                mixed_precision=settings["mixed_precision"],
            )
        )
        shapes = training_shapes(batch_size * sequence_length, model["hidden_dim"],
                                 model["intermediate_dim"], model["vocabulary_size"],
                                 backward=False)
        # Mixed precision multiplies in bfloat16: its MFU is against that peak.
        dtype = "bfloat16" if settings["mixed_precision"] else "float32"
        peak = matmul_peak(backend, dtype, shapes, repeats=2)
        logger.info("  peak     %-10s %s matmul at the step's shapes: %.1f GFLOP/s (%s)",
                    backend, dtype, peak["peak_gflop_s"], peak["library"])
    return {"machine": machine, "model": model, "results": results, "matmul_peak": peak}
