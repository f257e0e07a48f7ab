"""Token ids to text without replacement characters for split characters.

GPT-2's byte-level BPE maps every byte to a printable stand-in character, and
a token is a run of those stand-ins. A CJK character or an emoji takes three
or four UTF-8 bytes, which often land in different tokens, so decoding the
tokens one at a time (or stopping mid-character) shows U+FFFD. Here token ids
are turned back into their bytes through the byte decoder, and the UTF-8
decoder holds the bytes of an incomplete character until the rest arrives.
Only at the very end is an incomplete tail dropped. Bytes that can never
form a character (the model may generate those) still decode to U+FFFD.

Example:
```python
import kgpt2
from kgpt2.generation.detokenize import IncrementalDecoder, decode_tokens

tokenizer = kgpt2.presets.gpt2_tokenizer()
ids = [int(i) for i in tokenizer("春眠不觉晓")]
# The split 晓 is dropped:
print(decode_tokens(tokenizer, ids[:-1]))  # 春眠不觉
decoder = IncrementalDecoder(tokenizer)
print("".join(decoder.push([i]) for i in ids) + decoder.flush())  # 春眠不觉晓
```
"""

import codecs

# One implementation, beside the tokenizer (lower layers, e.g. training
# callbacks, decode with it too); this module is the generation-side home.
from kgpt2.presets.tokenizer import decode_tokens
from kgpt2.presets.tokenizer import token_ids_to_bytes

__all__ = ["IncrementalDecoder", "decode_tokens", "token_ids_to_bytes"]


class IncrementalDecoder:
    """Decode token ids as they arrive, never splitting a character.

    `push(ids)` returns the text that the new ids complete; the bytes of a
    character still missing its last bytes wait for the next push.
    `flush()` ends the stream: it drops an incomplete tail and returns what
    is left (always "" for UTF-8, kept so streams end uniformly).

    Args:
        tokenizer: a GPT-2 byte-level BPE tokenizer.

    Example:
    ```python
    import kgpt2
    from kgpt2.generation.detokenize import IncrementalDecoder

    tokenizer = kgpt2.presets.gpt2_tokenizer()
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push([i]) for i in tokenizer("鸟😀")]
    print(pieces, repr(decoder.flush()))  # ['', '', '鸟', '', '😀'] ''
    ```
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, ids):
        """Add token `ids`; return the text they complete (maybe "")."""
        return self._decoder.decode(token_ids_to_bytes(self.tokenizer, ids), final=False)

    def flush(self):
        """End the stream: drop an incomplete tail, return the rest, reset."""
        self._decoder.reset()
        return ""
