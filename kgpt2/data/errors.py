"""The error every data adapter raises for bad input."""

from kgpt2.errors import InputError


class DataError(InputError):
    """Input data could not be turned into a pipeline; the message says why.

    It names the file, record, key or value at fault and what is allowed.
    A missing path raises `FileNotFoundError` instead.

    Example:
    ```python
    import kgpt2

    try:
        kgpt2.data.from_texts([])
    except kgpt2.data.DataError as error:
        print(error)
    ```
    """
