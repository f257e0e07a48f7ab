"""The shared pipeline options and packing, on in-memory texts."""

import numpy as np
import pytest

import kgpt2
from kgpt2.data import DataError

TEXTS = [f"text number {i}" for i in range(20)]


def strings(dataset):
    return [s.decode() for batch in dataset for s in batch.numpy()]


@pytest.fixture(scope="module")
def tokenizer():
    return kgpt2.presets.gpt2_tokenizer()


@pytest.fixture(scope="module")
def reference_ids():
    """GPT-2's encoding by an independent implementation (HF tokenizers with
    GPT-2's byte-level pre-tokenizer), to check the ids kgpt2 packs."""
    from tokenizers import Tokenizer
    from tokenizers import models
    from tokenizers import pre_tokenizers

    from kgpt2.presets.tokenizer import tokenizer_asset_dir

    folder = tokenizer_asset_dir()
    reference = Tokenizer(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
    reference.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return lambda text: reference.encode(text).ids


def test_batches_of_strings_hold_every_text_once():
    data = kgpt2.data.from_texts(TEXTS, batch_size=6)
    batches = list(data)
    assert [b.shape[0] for b in batches] == [6, 6, 6, 2]
    assert sorted(strings(data)) == sorted(TEXTS)
    assert not kgpt2.data.is_preprocessed(data)


def test_shuffle_is_seeded_and_changes_every_epoch():
    first = kgpt2.data.from_texts(TEXTS, batch_size=4, seed=1)
    again = kgpt2.data.from_texts(TEXTS, batch_size=4, seed=1)
    other = kgpt2.data.from_texts(TEXTS, batch_size=4, seed=2)
    epoch_1, epoch_2 = strings(first), strings(first)
    assert epoch_1 == strings(again)
    assert epoch_1 != epoch_2 and sorted(epoch_1) == sorted(epoch_2)
    assert epoch_1 != strings(other)
    assert strings(kgpt2.data.from_texts(TEXTS, shuffle=False)) == TEXTS


def test_take_counts_batches_and_keeps_the_same_examples():
    data = kgpt2.data.from_texts(TEXTS, batch_size=3, take=2)
    epoch_1, epoch_2 = strings(data), strings(data)
    assert len(list(data)) == 2 and len(epoch_1) == 6
    assert sorted(epoch_1) == sorted(epoch_2)


def test_validation_split_is_disjoint_and_stable():
    split = dict(batch_size=4, validation_split=0.25)
    train = kgpt2.data.from_texts(TEXTS, subset="training", **split)
    validation = kgpt2.data.from_texts(TEXTS, subset="validation", **split)
    held = strings(validation)
    assert len(held) == 5
    assert sorted(strings(train) + held) == sorted(TEXTS)
    assert strings(validation) == held  # Not reshuffled between epochs.
    assert sorted(strings(train) + held) == sorted(TEXTS)
    ordered = kgpt2.data.from_texts(TEXTS, shuffle=False, validation_split=0.1,
                                    subset="validation")
    assert strings(ordered) == TEXTS[-2:]


def test_every_adapter_returns_one_dataset_and_a_split_needs_its_subset():
    import tensorflow as tf

    for options in [{}, dict(validation_split=0.25, subset="training"),
                    dict(validation_split=0.25, subset="validation")]:
        assert isinstance(kgpt2.data.from_texts(TEXTS, **options), tf.data.Dataset), options
    with pytest.raises(kgpt2.data.DataError, match="needs subset='training' or subset='validation'"):
        kgpt2.data.from_texts(TEXTS, validation_split=0.25)
    with pytest.raises(kgpt2.data.DataError, match="subset='training' needs validation_split"):
        kgpt2.data.from_texts(TEXTS, subset="training")


def test_cache_to_files(tmp_path):
    prefix = tmp_path / "cache"
    data = kgpt2.data.from_texts(TEXTS, cache=str(prefix))
    assert sorted(strings(data)) == sorted(TEXTS)
    assert any(p.name.startswith("cache") for p in tmp_path.iterdir())


@pytest.mark.slow
def test_packed_windows_are_the_separated_token_stream(tokenizer, reference_ids):
    # "（见《" is where KerasHub's eager (Python) workflow departs from GPT-2.
    texts = ["床前明月光", "Hello world", "疑是地上霜，举头望明月（见《国史补》卷中）", "short"] * 5
    length = 8
    data = kgpt2.data.from_texts(
        texts, batch_size=3, shuffle=False, pack=True, sequence_length=length, tokenizer=tokenizer
    )
    assert kgpt2.data.is_preprocessed(data)
    stream = []
    for text in texts:
        stream += [50256] + reference_ids(text)
    windows = len(stream) // (length + 1)
    expected = np.array(stream[: windows * (length + 1)]).reshape(windows, length + 1)
    got_x, got_y, got_w, got_mask = [], [], [], []
    for x, y, weight in data.as_numpy_iterator():
        got_x.append(x["token_ids"]), got_mask.append(x["padding_mask"])
        got_y.append(y), got_w.append(weight)
    np.testing.assert_array_equal(np.concatenate(got_x), expected[:, :-1])
    np.testing.assert_array_equal(np.concatenate(got_y), expected[:, 1:])
    assert np.concatenate(got_mask).all() and np.concatenate(got_w).all()
    assert len(data) == -(-windows // 3)  # Known cardinality: progress bars, schedules.


@pytest.mark.slow
def test_packed_take_bounds_the_windows(tokenizer):
    data = kgpt2.data.from_texts(
        ["Some words to pack."] * 1000, batch_size=3, take=2, pack=True,
        sequence_length=8, tokenizer=tokenizer,
    )
    assert len(data) == 2 and [x["token_ids"].shape[0] for x, _, _ in data] == [3, 3]


@pytest.mark.slow
def test_packed_output_has_the_preprocessor_structure(tiny_lm):
    import tensorflow as tf

    texts = ["Some words to pack."] * 40
    length = tiny_lm.preprocessor.sequence_length
    packed = kgpt2.data.from_texts(
        texts, batch_size=2, pack=True, sequence_length=length,
        tokenizer=tiny_lm.preprocessor.tokenizer,
    )
    reference = tf.data.Dataset.from_tensor_slices(texts).batch(2).map(tiny_lm.preprocessor)
    assert packed.element_spec == reference.element_spec


@pytest.mark.slow
def test_token_stats_counts_padding(tiny_lm, tokenizer):
    data = kgpt2.data.from_texts(["Hello world"] * 10, batch_size=4)
    stats = kgpt2.data.token_stats(data, tiny_lm.preprocessor)
    # [start] Hello world [end], then padding up to 64 positions.
    # The labels are the inputs shifted by one: [start] is never a target.
    assert stats == {"sequences": 10, "positions": 640, "tokens": 40, "targets": 30,
                     "padding_fraction": pytest.approx(1 - 40 / 640)}
    packed = kgpt2.data.from_texts(
        ["Hello world"] * 100, pack=True, sequence_length=16, tokenizer=tokenizer
    )
    stats = kgpt2.data.token_stats(packed)
    assert stats["sequences"] == 300 // 17 and stats["padding_fraction"] == 0
    assert stats["tokens"] == stats["targets"] == stats["sequences"] * 16


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
        (dict(take=0), "take must be None or an integer >= 1"),
        (dict(validation_split=1.5), "validation_split must be .* got 1.5"),
        (dict(pack=True, sequence_length=16), "pack=True needs the model's tokenizer"),
        (dict(pack=True, tokenizer="t"), "pack=True needs sequence_length"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(DataError, match=message):
        kgpt2.data.from_texts(TEXTS, **options)


def test_bad_texts_are_named():
    with pytest.raises(DataError, match="no texts"):
        kgpt2.data.from_texts([])
    with pytest.raises(DataError, match="text 1 is a int"):
        kgpt2.data.from_texts(["fine", 3])
    with pytest.raises(DataError, match="list of strings, got one str"):
        kgpt2.data.from_texts("just one")
    with pytest.raises(DataError, match="leaves nothing to train on"):
        kgpt2.data.from_texts(["only one"], validation_split=0.5, subset="training")


@pytest.mark.slow
def test_texts_too_short_to_fill_a_window(tokenizer):
    with pytest.raises(DataError, match="fewer than sequence_length \\+ 1 = 65 tokens"):
        kgpt2.data.from_texts(["tiny", "texts"], pack=True, sequence_length=64, tokenizer=tokenizer)
