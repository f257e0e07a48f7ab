"""How long a GPT-2 sequence may be, and the check every loader makes."""

from kgpt2.checks import shown_name
from kgpt2.presets.errors import PresetError

# GPT-2's position embedding: 1024 positions in every official size.
MAX_SEQUENCE_LENGTH = 1024


def check_sequence_length(sequence_length, model_max, preset):
    """Raise `PresetError` unless `sequence_length` fits a model with `model_max` positions.

    `None` (the preset's own length) always fits.

    Args:
        sequence_length: what the user asked for, or None.
        model_max: how many positions the model's embedding has.
        preset: the preset's name or folder, for the message.

    Example:
    ```python
    from kgpt2.presets.errors import PresetError
    from kgpt2.presets.sequence_length import check_sequence_length

    check_sequence_length(128, 1024, "gpt2_base_en")
    try:
        check_sequence_length(2048, 1024, "gpt2_base_en")
    except PresetError as error:
        print(str(error).split(":")[0])  # sequence_length=2048 is longer than preset 'gpt2_base_en' supports
    ```
    """
    if sequence_length is None:
        return
    name = shown_name("sequence_length")  # the flag, on the command line
    if not isinstance(sequence_length, int) or sequence_length < 2:
        raise PresetError(f"{name} must be an integer >= 2, got {sequence_length!r}.")
    if sequence_length > model_max:
        raise PresetError(
            f"{name}={sequence_length} is longer than preset "
            f"'{preset}' supports: its position embedding has "
            f"{model_max} positions. Use {name} <= {model_max}."
        )
