"""`valid_utf8`: tokens that cannot continue the text as UTF-8 are never picked.

A random `gpt2_tiny_random` rarely picks byte tokens, so the end-to-end tests
use a tiny model whose logits favour the 256 single-byte tokens equally:
without the option its text is full of U+FFFD (checked, so the tests can
fail), with it there is none, through `kgpt2.generate`'s fast path.
"""

import codecs

import numpy as np
import pytest

import kgpt2
from kgpt2.errors import InputError
from kgpt2.presets.tokenizer import token_bytes
from kgpt2.samplers.utf8_continuation import allowed_token_mask
from kgpt2.samplers.utf8_continuation import tokenizer_utf8_tables


def _is_valid_prefix(data):
    """Whether `data` is the start of some valid UTF-8 text."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return True


@pytest.fixture(scope="module")
def byte_table():
    return token_bytes(kgpt2.presets.gpt2_tokenizer())


@pytest.fixture(scope="module")
def tables():
    return tokenizer_utf8_tables(kgpt2.presets.gpt2_tokenizer())


@pytest.mark.slow
def test_allowed_tokens_are_exactly_the_decodable_continuations(tables, byte_table):
    """Checked against Python's UTF-8 decoder after texts ending mid-character.

    The one deliberate difference: a token ending in a bare lead byte whose
    next byte has a narrower range (E0, ED, F0, F4) is refused.
    """
    tokenizer = kgpt2.presets.gpt2_tokenizer()
    index_of = {data: i for i, data in enumerate(byte_table) if len(data) == 1}
    rng = np.random.default_rng(0)
    for _ in range(12):
        text = "".join(rng.choice(list("a春眠不觉晓😀é")) for _ in range(3))
        last = text[-1].encode()
        cut = int(rng.integers(0, len(last)))  # 0: the text is complete
        tokens = [int(t) for t in np.asarray(tokenizer(text[:-1]))]
        tokens += [index_of[bytes([b])] for b in last[:cut]]
        allowed = np.asarray(
            allowed_token_mask(tables, np.array([tokens + [0]], "int32"), len(tokens))
        )[0]
        prefix = b"".join(byte_table[t] for t in tokens)
        for token, data in enumerate(byte_table):
            expected = _is_valid_prefix(prefix + data) and data[-1:] not in (
                b"\xe0", b"\xed", b"\xf0", b"\xf4")
            if bool(allowed[token]) != expected:
                # Tokens that end with such a lead byte after other bytes.
                assert not allowed[token] and data[-1] in (0xE0, 0xED, 0xF0, 0xF4), (
                    text, cut, data)


@pytest.fixture(scope="module")
def byte_lm(byte_table):
    """A tiny model whose next-token logits are equal for every single-byte token."""
    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    backbone = lm.backbone
    norm = backbone.get_layer("layer_norm")
    gamma, beta = norm.get_weights()
    beta = np.zeros_like(beta)
    beta[0] = 1.0
    norm.set_weights([np.zeros_like(gamma), beta])
    embedding = backbone.get_layer("token_embedding")
    weights = embedding.get_weights()[0]
    weights[:, 0] = np.where([len(b) == 1 for b in byte_table], 10.0, -10.0)
    embedding.set_weights([weights])
    return lm


SAMPLERS = {
    "random": {},
    "top_k": dict(k=200),
    "top_p": dict(p=0.9),
    "greedy": {},
    "beam": dict(num_beams=2),
    "contrastive": dict(k=4, alpha=0.3),
}


def _replacement_count(lm, name, valid_utf8, seed):
    sampler = kgpt2.samplers.get(name, valid_utf8=valid_utf8, **SAMPLERS[name])
    seeded = name in ("random", "top_k", "top_p")
    texts = kgpt2.generate(lm, "春眠", sampler=sampler, max_length=32,
                           seed=seed if seeded else None, stop_token_ids=None)
    return texts[0].count("\ufffd")


@pytest.mark.slow
def test_without_the_option_the_byte_model_writes_replacement_characters(byte_lm):
    assert sum(_replacement_count(byte_lm, "random", False, seed) for seed in range(3)) > 0


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.slow
def test_valid_utf8_never_writes_replacement_characters(byte_lm, name):
    seeds = range(3) if name in ("random", "top_k", "top_p") else [0]
    for seed in seeds:
        assert _replacement_count(byte_lm, name, True, seed) == 0, (name, seed)


def test_valid_utf8_round_trips_in_the_config():
    import keras_hub

    sampler = kgpt2.samplers.get("top_k", valid_utf8=True)
    again = keras_hub.samplers.deserialize(keras_hub.samplers.serialize(sampler))
    assert again.valid_utf8 is True
    with pytest.raises(InputError):
        kgpt2.samplers.get("greedy", valid_utf8="yes")


def test_tables_stay_python_inside_a_tensorflow_trace(monkeypatch):
    # `generate` builds the tables while it is traced; on TensorFlow,
    # autograph used to rewrite their Python loops and run its loop operator
    # once per vocabulary entry (100 s for GPT-2's 50,257 tokens).
    import types

    import tensorflow as tf
    from tensorflow.python.autograph.operators import control_flow

    loops = []
    python_while = control_flow._py_while_stmt

    def counted_while(*args, **kwargs):
        loops.append(args)
        return python_while(*args, **kwargs)

    monkeypatch.setattr(control_flow, "_py_while_stmt", counted_while)
    # Only `.vocabulary` is read: a five-token stand-in keeps the trace short.
    tokenizer = types.SimpleNamespace(vocabulary={"a": 0, "Ġ": 1, "ä": 2, "½": 3, "x": 4})

    @tf.function
    def traced():
        tables["owed"] = tokenizer_utf8_tables(tokenizer)["owed"]
        return tf.constant(0)

    tables = {}
    traced()
    assert list(tables["owed"]) == [0, 0, 2, 0, 0]
    assert loops == []
