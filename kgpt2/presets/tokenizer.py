"""The real GPT-2 byte-level BPE tokenizer, from files shipped in the package."""

import codecs
import contextlib
import functools
import weakref
from importlib import resources

from kgpt2.errors import InputError

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
    # Set after construction, as KerasHub's own preset loader does: passed
    # to the constructor, Keras would walk both tables to record its config.
    tokenizer = keras_hub.models.GPT2Tokenizer()
    with _untracked():
        tokenizer.set_vocabulary_and_merges(dict(vocabulary), list(merges))
    return tokenizer


def _untracked():
    """A scope in which Keras does not wrap a layer's dicts and lists.

    Keras wraps every dict and list a layer holds so that layers and
    variables put in them later are tracked. The tokenizer's 50,257-entry
    vocabulary and 50,000 merges hold only strings, and wrapping them took
    about half of building the tokenizer, the bulk of loading
    `gpt2_tiny_random`. The scope is Keras's own, not public API:
    where it is missing, the tokenizer is built as usual.
    """
    try:
        from keras.src.utils.tracking import DotNotTrackScope
    except ImportError:
        return contextlib.nullcontext()
    return DotNotTrackScope()


_BYTE_TABLES = weakref.WeakKeyDictionary()


@functools.lru_cache(maxsize=1)
def byte_decoder():
    """GPT-2's map from each stand-in character back to the byte it stands for.

    Printable bytes stand for themselves; the other 68 are shifted to the
    characters from U+0100 on, in byte order (OpenAI's `bytes_to_unicode`).

    Example:
    ```python
    from kgpt2.presets.tokenizer import byte_decoder

    print(byte_decoder()["Ġ"], byte_decoder()["a"])  # 32 97
    ```
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    decoder = {chr(b): b for b in printable}
    shifted = 0
    for b in range(256):
        if b not in printable:
            decoder[chr(256 + shifted)] = b
            shifted += 1
    return decoder


def token_bytes(tokenizer):
    """A list: token id -> the bytes it stands for (built once per tokenizer).

    Example:
    ```python
    import kgpt2
    from kgpt2.presets.tokenizer import token_bytes

    print(token_bytes(kgpt2.presets.gpt2_tokenizer())[15496])  # b'Hello'
    ```
    """
    try:
        return _BYTE_TABLES[tokenizer]
    except (KeyError, TypeError):
        pass
    decoder = byte_decoder()
    vocabulary = tokenizer.vocabulary
    table = [b""] * (max(int(i) for i in vocabulary.values()) + 1)
    for token, index in vocabulary.items():
        if all(char in decoder for char in token):
            table[int(index)] = bytes(decoder[char] for char in token)
        else:  # a special token written as itself, e.g. "<|endoftext|>"
            table[int(index)] = token.encode("utf-8")
    try:
        _BYTE_TABLES[tokenizer] = table
    except TypeError:
        pass
    return table


def token_ids_to_bytes(tokenizer, ids):
    """The bytes that token `ids` stand for, concatenated.

    Raises:
        InputError: an id outside the tokenizer's vocabulary.

    Example:
    ```python
    import kgpt2
    from kgpt2.presets.tokenizer import token_ids_to_bytes

    tokenizer = kgpt2.presets.gpt2_tokenizer()
    print(token_ids_to_bytes(tokenizer, [15496, 995]))  # b'Hello world'
    ```
    """
    table = token_bytes(tokenizer)
    pieces = []
    for token_id in ids:
        token_id = int(token_id)
        if not 0 <= token_id < len(table):
            raise InputError(
                f"Token id {token_id} is outside the vocabulary (ids 0-{len(table) - 1})."
            )
        pieces.append(table[token_id])
    return b"".join(pieces)


def decode_tokens(tokenizer, ids):
    """The text of token `ids`, dropping only an incomplete trailing character.

    Args:
        tokenizer: a GPT-2 byte-level BPE tokenizer, e.g.
            `lm.preprocessor.tokenizer`.
        ids: token ids (a list, tuple or 1-D array).

    Returns:
        A str. A character whose bytes were cut off at the end is left out;
        bytes that can never form a character decode to U+FFFD.

    Example:
    ```python
    import kgpt2
    from kgpt2.presets.tokenizer import decode_tokens

    tokenizer = kgpt2.presets.gpt2_tokenizer()
    print(decode_tokens(tokenizer, tokenizer("床前明月光")))  # 床前明月光
    ```
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return decoder.decode(token_ids_to_bytes(tokenizer, ids), final=False)
