"""Turn GPT-2 token ids into text without splitting a character.

GPT-2's byte-level BPE can cut one UTF-8 character (a CJK character, an
emoji) across two tokens. Decoding each token on its own then prints U+FFFD
replacement characters. `IncrementalDecoder` keeps the bytes of an
incomplete character until the token that completes it arrives, so streamed
text only ever shows whole characters.

Example:
```python
import kgpt2
from kgpt2.generation.detokenize import IncrementalDecoder

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
tokenizer = lm.preprocessor.tokenizer
ids = list(tokenizer("你好, world"))
decoder = IncrementalDecoder(tokenizer)
pieces = [decoder.push([token]) for token in ids] + [decoder.flush()]
print("".join(pieces))  # 你好, world
```
"""

import codecs
import weakref

# tokenizer -> list of each id's bytes; weak so dropping a model frees it.
_TOKEN_BYTES = weakref.WeakKeyDictionary()


def _byte_decoder():
    """GPT-2's byte-level alphabet: printable character -> the byte it stands for."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    characters = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, characters)}


def token_bytes(tokenizer):
    """Each token id's raw bytes (a list indexed by id), computed once per tokenizer."""
    if tokenizer not in _TOKEN_BYTES:
        decoder = _byte_decoder()
        table = []
        for token in tokenizer.get_vocabulary():
            # Special tokens such as <|endoftext|> are plain ASCII, which the
            # byte alphabet maps to itself.
            table.append(bytes(decoder.get(c, ord(c) & 0xFF) for c in token))
        _TOKEN_BYTES[tokenizer] = table
    return _TOKEN_BYTES[tokenizer]


class IncrementalDecoder:
    """Decode token ids pushed a few at a time into whole-character text.

    Args:
        tokenizer: a KerasHub GPT-2 (byte-level BPE) tokenizer.

    Example:
    ```python
    import kgpt2
    from kgpt2.generation.detokenize import IncrementalDecoder

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    decoder = IncrementalDecoder(lm.preprocessor.tokenizer)
    ids = list(lm.preprocessor.tokenizer("é"))
    print(repr(decoder.push(ids) + decoder.flush()))  # 'é'
    ```
    """

    def __init__(self, tokenizer):
        self._table = token_bytes(tokenizer)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, ids):
        """Add token ids; return the text they complete (may be "")."""
        data = b"".join(self._table[int(i)] for i in ids)
        return self._decoder.decode(data, final=False)

    def flush(self):
        """Return what is left: an incomplete character at the very end is
        dropped (it can never be completed), never shown as U+FFFD."""
        self._decoder.reset()
        return ""
