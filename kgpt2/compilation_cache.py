"""JAX's persistent compilation cache, so a new process skips most compiling.

Compiling a training step or a generation loop takes seconds, and drawing a
new model's weights compiles a small program per weight shape; JAX can keep
compiled programs on disk and reload them in the next process. kgpt2 turns
that on when it loads or compiles a model (`kgpt2.load`, `kgpt2.compile_lm`)
and before it compiles a generation function, in `~/.cache/kgpt2/jax` (or
`$XDG_CACHE_HOME/kgpt2/jax`), and keeps every program that took at least
`MIN_COMPILE_SECONDS` to compile. Set `KGPT2_COMPILATION_CACHE` to another
folder, or to `off` to disable it. A cache folder the user already gave JAX
(`jax_compilation_cache_dir`) is left as it is.

Example:
```python
from kgpt2.compilation_cache import enable_compilation_cache

# The folder in use, or None when the cache is off.
print(enable_compilation_cache())
```
"""

import os
import pathlib

ENVIRONMENT_VARIABLE = "KGPT2_COMPILATION_CACHE"
OFF_VALUES = ("off", "0", "false", "no", "none", "")
# JAX keeps only programs that took a second to compile by default. The
# weight-drawing programs of `kgpt2.load` take 0.1-0.3 s each but 4-5 s
# together on a 2-core CPU, so kgpt2's folder keeps those too.
MIN_COMPILE_SECONDS = 0.1
JAX_DEFAULT_MIN_COMPILE_SECONDS = 1.0


def default_cache_dir():
    """Return `$XDG_CACHE_HOME/kgpt2/jax` (default `~/.cache/kgpt2/jax`)."""
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "kgpt2" / "jax"


def enable_compilation_cache():
    """Point JAX's persistent compilation cache at kgpt2's folder.

    Returns the folder in use (a string), or None when it is off or the
    backend is not JAX.
    """
    import keras

    if keras.config.backend() != "jax":
        return None
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    setting = os.environ.get(ENVIRONMENT_VARIABLE)
    if setting is not None and setting.strip().lower() in OFF_VALUES:
        return None
    folder = pathlib.Path(setting).expanduser() if setting else default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # A read-only home only costs compile time; don't fail.
    jax.config.update("jax_compilation_cache_dir", str(folder))
    if jax.config.jax_persistent_cache_min_compile_time_secs == JAX_DEFAULT_MIN_COMPILE_SECONDS:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return str(folder)
