"""Lazy package attributes: the one way kgpt2 keeps an import cheap.

A package whose import time matters (`kgpt2` itself, so that `import kgpt2`
and the `kgpt2` command start without Keras or TensorFlow) defines its public
names with `lazy_exports` instead of importing them: each name, and each
subpackage or module, is imported the first time it is used, then kept as an
ordinary attribute. Every other module imports at the top of the file.

Example:
```python
import sys
import kgpt2

# Nothing heavy is loaded yet.
print("keras" in sys.modules)  # False
# Imported on first use:
print(kgpt2.bench.report.__name__)  # kgpt2.bench.report
```
"""

import importlib
import importlib.util
import sys


def lazy_exports(package, exports):
    """Return a module-level `__getattr__` and `__dir__` for `package`.

    Args:
        package: the package's `__name__`.
        exports: public name -> the module that defines it. Names that are
            not listed resolve to the package's submodule of that name.

    Example:
    ```python
    # In a package's __init__.py:
    from kgpt2.lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, {"run": "kgpt2.bench.benchmark"})
    ```
    """

    def __getattr__(name):
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
        elif not name.startswith("__") and importlib.util.find_spec(f"{package}.{name}"):
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
