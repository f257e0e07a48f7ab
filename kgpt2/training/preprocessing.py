"""Fit with the preprocessor detached from `lm`, and reattach it when needed.

KerasHub's `fit` maps `lm.preprocessor` over every dataset it is given, so
batches that are already model inputs (tokenized datasets, or text that
kgpt2 tokenized itself) would be tokenized again and fail. These context
managers detach the preprocessor and always reattach it, also when
training raises; callbacks reattach it briefly to save or generate.
"""

import contextlib


@contextlib.contextmanager
def detached_preprocessor(lm):
    """Set `lm.preprocessor = None` inside the block, then restore it.

    Example:
    ```python
    import kgpt2
    from kgpt2.training.preprocessing import detached_preprocessor

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    with detached_preprocessor(lm) as preprocessor:
        print(lm.preprocessor is None, preprocessor is not None)  # True True
    print(lm.preprocessor is preprocessor)  # True
    ```
    """
    preprocessor = lm.preprocessor
    lm.preprocessor = None
    try:
        yield preprocessor
    finally:
        lm.preprocessor = preprocessor


@contextlib.contextmanager
def attached_preprocessor(lm, preprocessor):
    """Attach `preprocessor` inside the block when `lm` has none (to save or generate)."""
    if lm.preprocessor is not None or preprocessor is None:
        yield lm
        return
    lm.preprocessor = preprocessor
    try:
        yield lm
    finally:
        lm.preprocessor = None
