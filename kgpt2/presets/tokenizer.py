"""The real GPT-2 byte-level BPE tokenizer, from files shipped in the package."""

import functools
from importlib import resources

GPT2_VOCABULARY_SIZE = 50257
END_OF_TEXT = "<|endoftext|>"
END_OF_TEXT_ID = 50256


def tokenizer_asset_dir():
    """Return the folder holding OpenAI's GPT-2 `vocab.json` and `merges.txt`.

    Example:
    ```python
    from kgpt2.presets.tokenizer import tokenizer_asset_dir

    print(sorted(p.name for p in tokenizer_asset_dir().iterdir()))
    ```
    """
    return resources.files("kgpt2") / "assets" / "gpt2_bpe"


@functools.lru_cache(maxsize=1)
def _vocabulary_and_merges():
    # Parsing the 1 MB vocabulary takes a while; every preset shares it.
    import json

    folder = tokenizer_asset_dir()
    vocabulary = json.loads((folder / "vocab.json").read_text("utf-8"))
    merges = (folder / "merges.txt").read_text("utf-8").split("\n")[1:-1]
    return vocabulary, merges


def gpt2_tokenizer():
    """Build `keras_hub.models.GPT2Tokenizer` with OpenAI's GPT-2 vocabulary.

    The files are byte-identical to OpenAI's `encoder.json` and `vocab.bpe`
    (see `kgpt2/assets/gpt2_bpe/SOURCE.md`), so token ids match every
    official GPT-2 checkpoint.

    Example:
    ```python
    from kgpt2.presets import gpt2_tokenizer

    tokenizer = gpt2_tokenizer()
    print([int(token) for token in tokenizer("Hello world")])  # [15496, 995]
    ```
    """
    import keras_hub

    vocabulary, merges = _vocabulary_and_merges()
    return keras_hub.models.GPT2Tokenizer(
        vocabulary=dict(vocabulary), merges=list(merges)
    )
