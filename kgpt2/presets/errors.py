"""The error every preset reader and loader raises for a preset it cannot use."""

from kgpt2.errors import InputError


class PresetError(InputError):
    """A preset could not be resolved or loaded; the message says why.

    Example:
    ```python
    import kgpt2

    try:
        kgpt2.load("no_such_preset")
    except kgpt2.PresetError as error:
        print(str(error).startswith("Unknown preset 'no_such_preset'"))  # True
    ```
    """
