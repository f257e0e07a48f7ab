"""`kgpt2.data.token_stats`: how much of a pipeline's batches is padding."""

from kgpt2.data.errors import DataError
from kgpt2.data.packing import is_preprocessed


def token_stats(dataset, preprocessor=None):
    """Count real tokens and padding in every batch of `dataset`.

    Args:
        dataset: a pipeline of string batches (give `preprocessor`) or of
            preprocessed `(x, y, sample_weight)` batches (packed).
        preprocessor: the model's `GPT2CausalLMPreprocessor`, applied to
            string batches exactly as `fit` would.

    Returns:
        A dict: `sequences`, `positions` (sequences x sequence_length),
        `tokens` (non-padding input positions, from `padding_mask`),
        `targets` (label positions the loss counts, from `sample_weight`)
        and `padding_fraction` (1 - tokens / positions).

    Example:
    ```python
    import kgpt2

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    data = kgpt2.data.from_texts(["床前明月光，疑是地上霜。"] * 8)
    print(kgpt2.data.token_stats(data, lm.preprocessor)["padding_fraction"])
    ```
    """
    import numpy as np

    preprocessed = is_preprocessed(dataset)
    if not preprocessed and preprocessor is None:
        raise DataError("token_stats() needs the preprocessor for a dataset of strings.")
    sequences = positions = tokens = targets = 0
    if not preprocessed:
        # Mapped as `fit` maps it: the graph workflow tokenizes like GPT-2.
        dataset = dataset.map(preprocessor)
    for x, _, weights in dataset.as_numpy_iterator():
        mask = np.asarray(x["padding_mask"])
        sequences += mask.shape[0]
        positions += mask.size
        tokens += int(mask.sum())
        targets += int(np.asarray(weights).sum())
    return {
        "sequences": sequences,
        "positions": positions,
        "tokens": tokens,
        "targets": targets,
        "padding_fraction": 1 - tokens / positions if positions else 0.0,
    }
