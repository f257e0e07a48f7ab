"""UTF-8-safe decoding: characters split across byte-level BPE tokens."""

import pytest

from kgpt2.generation.detokenize import IncrementalDecoder
from kgpt2.generation.detokenize import decode_tokens

TEXTS = ["春眠不觉晓，处处闻啼鸟。", "夜来风雨声😀花落知多少🌸", "mixed 中文 and emoji 🎉 text"]


@pytest.fixture(scope="module")
def tokenizer():
    from kgpt2.presets import gpt2_tokenizer

    return gpt2_tokenizer()


def ids_of(tokenizer, text):
    return [int(i) for i in tokenizer(text)]


@pytest.mark.parametrize("text", TEXTS)
def test_whole_and_token_by_token_decoding_give_the_text(tokenizer, text):
    ids = ids_of(tokenizer, text)
    # The text really has characters split across tokens.
    assert any("\ufffd" in tokenizer.detokenize([i]) for i in ids)
    assert decode_tokens(tokenizer, ids) == text
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push([i]) for i in ids]
    assert all("\ufffd" not in piece for piece in pieces)
    assert "".join(pieces) + decoder.flush() == text


@pytest.mark.parametrize("text", TEXTS)
def test_every_prefix_decodes_to_a_prefix_without_replacement(tokenizer, text):
    ids = ids_of(tokenizer, text)
    for end in range(len(ids) + 1):
        decoded = decode_tokens(tokenizer, ids[:end])
        assert "\ufffd" not in decoded
        assert text.startswith(decoded)
    # Dropping the cut-off tail only: the keras-hub decoder shows U+FFFD there.
    cut = next(end for end in range(1, len(ids)) if "\ufffd" in tokenizer.detokenize(ids[:end]))
    assert tokenizer.detokenize(ids[:cut]).rstrip("\ufffd") == decode_tokens(tokenizer, ids[:cut])


def test_flush_drops_an_incomplete_tail_and_resets(tokenizer):
    ids = ids_of(tokenizer, "鸟😀")
    decoder = IncrementalDecoder(tokenizer)
    assert decoder.push(ids[:-1]) == "鸟"  # the emoji's last bytes are missing
    assert decoder.flush() == ""
    assert decoder.push(ids_of(tokenizer, "花")) == "花"


def test_invalid_bytes_still_show_and_bad_ids_are_refused(tokenizer):
    import kgpt2

    lone_continuation = ids_of(tokenizer, "鸟")[-1]  # a token of continuation bytes only
    assert "\ufffd" in decode_tokens(tokenizer, [lone_continuation] + ids_of(tokenizer, "a"))
    with pytest.raises(kgpt2.Error, match="50257"):
        decode_tokens(tokenizer, [50257])
