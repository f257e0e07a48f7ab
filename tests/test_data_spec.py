"""`kgpt2.data.from_spec`: the CLI's `--data` strings map onto the adapters."""

import pytest

import kgpt2
from kgpt2.data import DataError


def texts_of(dataset):
    return sorted(s.decode() for batch in dataset for s in batch.numpy())


def test_file_specs_match_their_adapters(fixtures_dir):
    text_dir = fixtures_dir / "text"
    cases = [
        (f"poetry:{fixtures_dir / 'song_ci'}", kgpt2.data.poetry(fixtures_dir / "song_ci")),
        (f"text:{text_dir / 'stories.txt'}", kgpt2.data.text(text_dir / "stories.txt")),
        (f"csv:{text_dir / 'quotes.csv'}", kgpt2.data.text(text_dir / "quotes.csv")),
        (f"jsonl:{text_dir / 'reviews.jsonl'}#body", kgpt2.data.text(text_dir / "reviews.jsonl", field="body")),
    ]
    for spec, expected in cases:
        assert texts_of(kgpt2.data.from_spec(spec)) == texts_of(expected), spec
    by_key = kgpt2.data.from_spec(f"jsonl:{text_dir / 'reviews.jsonl'}", text_key="title")
    assert texts_of(by_key) == ["Broke", "Great kettle", "Too small"]


def test_spec_passes_pipeline_and_adapter_options(fixtures_dir):
    spec = f"poetry:{fixtures_dir / 'tang'}"
    options = dict(batch_size=5, validation_split=0.1, to_simplified=False)
    train = kgpt2.data.from_spec(spec, subset="training", **options)
    validation = kgpt2.data.from_spec(spec, subset="validation", **options)
    held = [s.decode() for b in validation for s in b.numpy()]
    assert len(held) == 6 and len(texts_of(train)) == 54
    first_poem = "秦川雄帝宅，函谷壯皇居。綺殿千尋起，離宮百雉餘。連甍遙接漢，飛觀迥凌虛。雲日隱層闕，風煙出綺疎。"
    assert first_poem in held + texts_of(train)  # to_simplified=False kept it Traditional.


def test_tfds_spec_uses_text_key():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=3):
        data = kgpt2.data.from_spec("tfds:reddit_tifu/short", text_key="title")
        assert sum(b.shape[0] for b in data) == 3
    with pytest.raises(DataError, match="has no feature 'body'"):
        kgpt2.data.from_spec("tfds:reddit_tifu/short", text_key="body")


def test_unknown_scheme_lists_allowed_ones():
    allowed = "tfds:NAME\\[/CONFIG\\], poetry:PATH, text:PATH, csv:PATH, jsonl:PATH#field"
    with pytest.raises(DataError, match=f"Unknown data spec scheme 'hf' in 'hf:gpt2'; use one of {allowed}"):
        kgpt2.data.from_spec("hf:gpt2")
    with pytest.raises(DataError, match=f"has no scheme; use one of {allowed}"):
        kgpt2.data.from_spec("poems.json")


def test_bad_specs_are_named(fixtures_dir):
    jsonl = fixtures_dir / "text" / "reviews.jsonl"
    with pytest.raises(DataError, match="needs a field: jsonl:PATH#field"):
        kgpt2.data.from_spec(f"jsonl:{jsonl}")
    with pytest.raises(DataError, match="names field 'body' but text_key is 'title'"):
        kgpt2.data.from_spec(f"jsonl:{jsonl}#body", text_key="title")
    with pytest.raises(DataError, match="text_key applies to tfds: and jsonl: specs only"):
        kgpt2.data.from_spec(f"poetry:{fixtures_dir / 'tang'}", text_key="title")
    with pytest.raises(DataError, match="names nothing; the form is poetry:PATH"):
        kgpt2.data.from_spec("poetry:")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        kgpt2.data.from_spec("text:/no/such/file.txt")
