"""The error the presets package raises for a preset it cannot resolve or load."""

from kgpt2.errors import InputError


class PresetError(InputError):
    """A preset could not be resolved or loaded; the message says why.

    Example:
    ```python
    from kgpt2.presets.errors import PresetError

    assert issubclass(PresetError, ValueError)
    ```
    """
