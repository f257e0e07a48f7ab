"""The base class of every error kgpt2 raises on purpose.

Each kgpt2 error also derives from the built-in class that fits it
(`ValueError` for a bad value, `FileNotFoundError` for a missing path, `OSError`
for a failed write), so code that caught those before still catches them. The
CLI prints any `kgpt2.Error` as one line and exits with status 1.

Example:
```python
import kgpt2

try:
    kgpt2.samplers.get("no_such_sampler")
except kgpt2.Error as error:
    print(error)
```
"""


class Error(Exception):
    """An error kgpt2 raised on purpose; its message says what to do.

    Example:
    ```python
    from kgpt2.errors import Error, InputError

    assert issubclass(InputError, Error) and issubclass(InputError, ValueError)
    ```
    """


class InputError(Error, ValueError):
    """A value given to kgpt2 is not allowed; the message names it.

    Example:
    ```python
    from kgpt2.errors import InputError

    try:
        raise InputError("batch_size must be an integer >= 1, got 0.")
    except ValueError as error:
        print(error)  # batch_size must be an integer >= 1, got 0.
    ```
    """


class MissingFileError(Error, FileNotFoundError):
    """A file or folder kgpt2 needs does not exist; the message names it.

    Example:
    ```python
    from kgpt2.errors import MissingFileError

    assert issubclass(MissingFileError, FileNotFoundError)
    ```
    """


class WriteError(Error, OSError):
    """kgpt2 could not write a file; what was there before is intact.

    Example:
    ```python
    from kgpt2.errors import WriteError

    assert issubclass(WriteError, OSError)
    ```
    """
