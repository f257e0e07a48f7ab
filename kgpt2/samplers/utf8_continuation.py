"""Which tokens can continue the UTF-8 text generated so far, as `keras.ops` math.

GPT-2's byte-level BPE splits most non-Latin characters into tokens of one or
two bytes, and a weak model happily follows a lead byte with another lead
byte: bytes that can never decode, shown as U+FFFD. UTF-8 is a finite-state
language, so the tokens that keep the text decodable depend only on how many
continuation bytes (`10xxxxxx`) the text still owes. Per token id this module
precomputes, from the tokenizer's vocabulary:

- `leading`: how many continuation bytes the token starts with (0-3);
- `all_continuation`: whether it is nothing but continuation bytes;
- `owed`: how many continuation bytes its trailing incomplete character
  still needs (0-3);
- `valid`: whether its bytes can occur in valid UTF-8 at all.

What the text owes is found from the last four tokens (a character has at
most three continuation bytes, and each token has at least one byte), and a
token is allowed when it pays exactly what is owed or part of it, never a
continuation byte when nothing is owed. A character whose second byte is
restricted (after `E0`, `ED`, `F0`, `F4`) is only allowed when one token
holds both bytes, so every byte that follows is free.

Example:
```python
import numpy as np
from kgpt2.samplers.utf8_continuation import utf8_tables, allowed_token_mask

# Four tokens: "a", lead byte E4 (owes 2), one continuation byte, "\\x80\\x80".
tables = utf8_tables([b"a", b"\\xe4", b"\\x80", b"\\x80\\x80"])
token_ids = np.array([[0, 1, 0]], "int32")  # "a", E4; position 2 unwritten
print(allowed_token_mask(tables, token_ids, 2))
# [[False False  True  True]]
```
"""

import numpy as np
from keras import ops

# The most continuation bytes a character has, and so the tokens looked back.
_MAX_OWED = 3
_LOOK_BACK = _MAX_OWED + 1


def _is_continuation(byte):
    return 0x80 <= byte <= 0xBF


def _sequence_length(lead):
    """A lead byte's character length, or 0 for a byte that cannot lead."""
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def _token_state(data):
    """`(leading, all_continuation, owed, valid)` for one token's bytes."""
    leading = 0
    while leading < len(data) and _is_continuation(data[leading]):
        leading += 1
    if leading == len(data):
        return leading, True, 0, 0 < leading <= _MAX_OWED
    rest = data[leading:]
    # The start of the last character: its lead byte.
    start = len(rest) - 1
    while start > 0 and _is_continuation(rest[start]):
        start -= 1
    length = _sequence_length(rest[start])
    tail = rest[start:]
    owed = max(length - len(tail), 0) if length else 0
    complete = rest if owed == 0 else rest[:start]
    valid = leading <= _MAX_OWED and length > 0
    try:
        complete.decode("utf-8")
    except UnicodeDecodeError:
        valid = False
    if valid and owed:
        if len(tail) == 1 and tail[0] in (0xE0, 0xED, 0xF0, 0xF4):
            # Its second byte has a narrower range than "any continuation";
            # tokens holding lead and second byte together stay allowed.
            valid = False
        else:
            # Any continuation bytes may follow the second one.
            try:
                (tail + b"\x80" * owed).decode("utf-8")
            except UnicodeDecodeError:
                valid = False
    return leading, False, owed, valid


def utf8_tables(token_bytes):
    """Per-token UTF-8 tables from a list `token id -> bytes`.

    Returns a dict of numpy arrays of shape `(vocab,)`: `leading` (int32),
    `all_continuation` (bool), `owed` (int32), `valid` (bool).

    Example:
    ```python
    from kgpt2.samplers.utf8_continuation import utf8_tables

    tables = utf8_tables([b"a", b"\\xe4\\xbd", b"\\xa0b"])
    print(tables["owed"], tables["leading"])  # [0 1 0] [0 0 1]
    ```
    """
    states = [_token_state(bytes(data)) for data in token_bytes]
    return {
        "leading": np.array([s[0] for s in states], "int32"),
        "all_continuation": np.array([s[1] for s in states], "bool"),
        "owed": np.array([s[2] for s in states], "int32"),
        "valid": np.array([s[3] for s in states], "bool"),
    }


def tokenizer_utf8_tables(tokenizer):
    """`utf8_tables` for a GPT-2 byte-level BPE tokenizer's vocabulary.

    Example:
    ```python
    import kgpt2
    from kgpt2.samplers.utf8_continuation import tokenizer_utf8_tables

    tables = tokenizer_utf8_tables(kgpt2.presets.gpt2_tokenizer())
    print(int(tables["valid"].sum()) < len(tables["valid"]))  # True
    ```
    """
    from kgpt2.presets.tokenizer import token_bytes

    return _without_autograph(lambda: utf8_tables(token_bytes(tokenizer)))()


def _without_autograph(function):
    """`function`, marked so that TensorFlow's autograph leaves it as Python.

    Samplers first build the tables while `generate` is being traced. On
    TensorFlow, autograph would rewrite every Python loop of `_token_state`
    and `token_bytes` into its own loop operators and run those, once per
    vocabulary entry: about 100,000 loop calls, 100 s of tracing.
    """
    try:
        import tensorflow as tf
    except ImportError:  # no TensorFlow, so no autograph either
        return function
    return tf.autograph.experimental.do_not_convert(function)


def owed_continuation_bytes(tables, token_ids, index):
    """How many continuation bytes `token_ids[:, :index]` still owes, `(batch,)`.

    Scans back over tokens made only of continuation bytes to the token
    holding the lead byte. Text that is already invalid owes nothing.
    """
    leading = ops.convert_to_tensor(tables["leading"])
    all_continuation = ops.convert_to_tensor(tables["all_continuation"])
    owed_by = ops.convert_to_tensor(tables["owed"])
    batch_size = ops.shape(token_ids)[0]
    index = ops.cast(index, "int32")
    paid = ops.zeros((batch_size,), "int32")
    owed = ops.zeros((batch_size,), "int32")
    found = ops.zeros((batch_size,), "bool")
    for back in range(1, _LOOK_BACK + 1):
        position = index - back
        column = ops.slice(token_ids, (0, ops.maximum(position, 0)), (batch_size, 1))
        token = ops.cast(column[:, 0], "int32")
        before_start = position < 0
        continuing = ops.logical_and(
            ops.take(all_continuation, token), ops.logical_not(before_start)
        )
        searching = ops.logical_not(found)
        # The first token (going back) that is not all continuation bytes
        # holds the lead byte; what it owes, less what came after, is owed.
        here = ops.logical_and(searching, ops.logical_not(continuing))
        owed = ops.where(
            here,
            ops.where(before_start, 0, ops.maximum(ops.take(owed_by, token) - paid, 0)),
            owed,
        )
        paid = ops.where(ops.logical_and(searching, continuing),
                         paid + ops.take(leading, token), paid)
        found = ops.logical_or(found, here)
    return owed


def allowed_token_mask(tables, token_ids, index):
    """`(batch, vocab)` bool: tokens that keep `token_ids[:, :index]` valid UTF-8.

    `index` is an int or a scalar int tensor (positions from `index` on are
    not written yet), as a KerasHub sampler's `next` receives it.

    Example:
    ```python
    import numpy as np
    from kgpt2.samplers.utf8_continuation import utf8_tables, allowed_token_mask

    tables = utf8_tables([b"a", b"\\xe4", b"\\x80", b"\\x80\\x80"])
    print(allowed_token_mask(tables, np.array([[0, 0]], "int32"), 1))
    # [[ True  True False False]]
    ```
    """
    owed = owed_continuation_bytes(tables, token_ids, index)[:, None]
    leading = ops.convert_to_tensor(tables["leading"])[None, :]
    all_continuation = ops.convert_to_tensor(tables["all_continuation"])[None, :]
    valid = ops.convert_to_tensor(tables["valid"])[None, :]
    pays = ops.logical_or(
        ops.equal(leading, owed),
        ops.logical_and(all_continuation, leading <= owed),
    )
    fits = ops.where(owed == 0, ops.equal(leading, 0), pays)
    return ops.logical_and(fits, valid)
