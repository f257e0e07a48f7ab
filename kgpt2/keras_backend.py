"""Which Keras backend kgpt2 runs on when the user has not chosen one.

Keras fixes its backend when it is first imported, from `KERAS_BACKEND`.
`import kgpt2` sets JAX as the default, because JAX generates fastest on
CPU and GPU. Training is different on a machine without an accelerator:
there TensorFlow's float32 training step (oneDNN products, XLA-fused
elsewhere) measured about 1.25x JAX's (XLA CPU) for gpt2_base_random at
8 x 128 (`kgpt2 bench --backends jax,tensorflow --train 8,128`). So `kgpt2 finetune` trains on TensorFlow
on such machines, unless the user set `KERAS_BACKEND` or asked for a
distribution (which needs JAX). Mixed precision on a CPU with bfloat16
instructions (AVX512-BF16, AMX) is the exception: there JAX's step, its
products accumulating in float32 (`kgpt2.training.float32_accumulation`),
ran 2.0-2.6x its float32 step, while TensorFlow's mixed step ran 0.70x its
own float32 one (`kgpt2 bench --backends jax,tensorflow --mixed-precision`), so
such runs train on JAX. A Python program keeps the backend it imported
Keras with.
"""

import glob
import os
import sys

ENVIRONMENT_VARIABLE = "KERAS_BACKEND"
DEFAULT_BACKEND = "jax"
# The user's own choice, read before `kgpt2/__init__.py` fills in the default.
USER_BACKEND = os.environ.get(ENVIRONMENT_VARIABLE) or None
# Device files of the accelerators Keras backends drive: NVIDIA and AMD
# GPUs, and TPUs (accel on recent generations, vfio on older ones).
ACCELERATOR_DEVICE_PATTERNS = ("/dev/nvidia[0-9]*", "/dev/kfd", "/dev/accel[0-9]*", "/dev/vfio/[0-9]*")


def set_default_backend():
    """Make JAX Keras's backend unless the user set `KERAS_BACKEND`.

    `import kgpt2` calls this before anything imports Keras.

    Example:
    ```python
    import os
    from kgpt2.keras_backend import set_default_backend

    set_default_backend()
    print(os.environ["KERAS_BACKEND"] in ("jax", "tensorflow", "torch"))  # True
    ```
    """
    os.environ.setdefault(ENVIRONMENT_VARIABLE, DEFAULT_BACKEND)


def has_accelerator(patterns=ACCELERATOR_DEVICE_PATTERNS):
    """Whether this machine shows a GPU or TPU device file.

    Looks at `/dev` only, so it costs nothing and imports no framework.

    Example:
    ```python
    from kgpt2.keras_backend import has_accelerator

    print(has_accelerator(patterns=()))  # False
    ```
    """
    return any(glob.glob(pattern) for pattern in patterns)


def cpu_bfloat16_instructions(cpuinfo="/proc/cpuinfo"):
    """The CPU's bfloat16 multiply-add instruction sets (`avx512_bf16`, `amx_bf16`).

    Read from the flags in `cpuinfo` (Linux); an empty tuple where it can't
    be read.

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.keras_backend import cpu_bfloat16_instructions

    cpuinfo = pathlib.Path(tempfile.mkdtemp()) / "cpuinfo"
    cpuinfo.write_text("flags : fpu avx2 avx512f avx512_bf16 amx_tile")
    print(cpu_bfloat16_instructions(cpuinfo))  # ('avx512_bf16',)
    ```
    """
    try:
        with open(cpuinfo, encoding="utf-8") as file:
            flags = next((line.split(":", 1)[1].split() for line in file
                          if line.startswith("flags")), [])
    except OSError:
        return ()
    return tuple(flag for flag in ("avx512_bf16", "amx_bf16") if flag in flags)


def training_backend(user_backend=USER_BACKEND, distributed=False, accelerator=None,
                     mixed_precision=False, bfloat16_instructions=None):
    """The backend to train on, and why, as `(backend, reason)`.

    Args:
        user_backend: the user's `KERAS_BACKEND`, or None if unset.
        distributed: whether a distribution or several processes were asked
            for (kgpt2 distributes on JAX only).
        accelerator: whether the machine has a GPU/TPU; None looks in /dev.
        mixed_precision: whether the run trains in mixed precision.
        bfloat16_instructions: the CPU's bfloat16 instruction sets; None
            reads them (`cpu_bfloat16_instructions`).

    Example:
    ```python
    from kgpt2.keras_backend import training_backend

    print(training_backend(user_backend=None, accelerator=False)[0])  # tensorflow
    print(training_backend(user_backend="jax", accelerator=False)[0])  # jax
    print(training_backend(user_backend=None, accelerator=False, mixed_precision=True,
                           bfloat16_instructions=("amx_bf16",))[0])  # jax
    ```
    """
    if user_backend:
        return user_backend, f"KERAS_BACKEND={user_backend}"
    if distributed:
        return DEFAULT_BACKEND, "distributed training runs on JAX"
    if has_accelerator() if accelerator is None else accelerator:
        return DEFAULT_BACKEND, "the default on a machine with an accelerator"
    if not mixed_precision:
        bfloat16_instructions = ()
    elif bfloat16_instructions is None:
        bfloat16_instructions = cpu_bfloat16_instructions()
    if bfloat16_instructions:
        return DEFAULT_BACKEND, (
            f"mixed precision on a CPU with {'/'.join(bfloat16_instructions)}: JAX's step "
            "multiplies in bfloat16, TensorFlow's is slower than its float32 one; "
            "set KERAS_BACKEND to choose"
        )
    return "tensorflow", (
        "no GPU/TPU here, and on CPUs TensorFlow's training step is faster than "
        "JAX's; set KERAS_BACKEND to choose"
    )


def use_training_backend(distributed=False, mixed_precision=False):
    """Switch this process to `training_backend()` if Keras is not loaded yet.

    Returns:
        `(backend, reason)`: the backend Keras will use, and why kgpt2 chose
        it, or None as the reason when the choice was not kgpt2's (the user
        set `KERAS_BACKEND`, or Keras was imported already and keeps its
        backend).

    Example:
    ```python
    import keras
    from kgpt2.keras_backend import use_training_backend

    # Keras is already imported here, so its backend stays:
    print(use_training_backend() == (keras.config.backend(), None))  # True
    ```
    """
    if "keras" in sys.modules:
        import keras

        return keras.config.backend(), None
    backend, reason = training_backend(distributed=distributed, mixed_precision=mixed_precision)
    os.environ[ENVIRONMENT_VARIABLE] = backend
    return backend, None if USER_BACKEND else reason


def keep_tensorflow_out():
    """Make `import tensorflow` fail in this process, if nothing has imported it yet.

    For processes that never run TensorFlow, such as `kgpt2 serve`: KerasHub
    imports TensorFlow whenever it is installed (for `tf.data`
    preprocessing), which costs a large share of the server's resident memory and
    seconds of start-up. Outside `tf.data`, KerasHub's tokenizers run
    without it (on the `tokenizers` package). Does nothing when Keras runs
    on TensorFlow, or when TensorFlow or KerasHub is already imported.

    Returns:
        Whether TensorFlow is kept out.

    Example:
    ```python
    import sys
    from kgpt2.keras_backend import keep_tensorflow_out

    # Here, as in most programs, KerasHub or TensorFlow may be loaded already:
    print(keep_tensorflow_out() == (sys.modules.get("tensorflow", 0) is None))  # True
    ```
    """
    if os.environ.get(ENVIRONMENT_VARIABLE, DEFAULT_BACKEND) == "tensorflow":
        return False
    if sys.modules.get("tensorflow", 0) is None:
        return True
    if "tensorflow" in sys.modules or "keras_hub" in sys.modules:
        return False
    # Python's documented way to make an import raise ImportError.
    sys.modules["tensorflow"] = None
    return True
