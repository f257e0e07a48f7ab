"""`kgpt2.data.text` on .txt, .csv and .jsonl fixtures."""

import pytest

import kgpt2
from kgpt2.data import DataError
from kgpt2.data.text_files import read_texts


@pytest.fixture(scope="module")
def text_dir(fixtures_dir):
    return fixtures_dir / "text"


def test_txt_lines_paragraphs_whole(text_dir):
    path = text_dir / "stories.txt"
    lines = read_texts(path)
    assert len(lines) == 5 and lines[0] == "The lighthouse keeper counted ships every night."
    paragraphs = read_texts(path, unit="paragraph")
    assert len(paragraphs) == 3
    assert paragraphs[2] == "The keeper read them all before sunrise."
    assert paragraphs[0] == "\n".join(lines[:2])
    assert read_texts(path, unit="whole") == [path.read_text("utf-8")]


def test_csv_single_column_with_header(text_dir):
    quotes = read_texts(text_dir / "quotes.csv")
    assert quotes == [
        "Simple is better than complex.",
        "Readability counts, even in a short line, with commas.",
        "Errors should never pass silently.\nUnless explicitly silenced.",
        "Now is better than never.",
    ]
    assert read_texts(text_dir / "quotes.csv", header=False)[0] == "quote"


def test_jsonl_field_and_markers(text_dir):
    bodies = read_texts(text_dir / "reviews.jsonl", field="body", start="<|startoftext|>", end="<|endoftext|>")
    assert bodies == [
        "<|startoftext|>Boils water fast and quietly.<|endoftext|>",
        "<|startoftext|>Holds one cup; fine for tea, not for a family.<|endoftext|>",
        "<|startoftext|>The lid cracked after a week.<|endoftext|>",
    ]


def test_text_returns_a_batched_pipeline(text_dir):
    data = kgpt2.data.text(text_dir / "reviews.jsonl", field="title", batch_size=2, shuffle=False)
    assert [[s.decode() for s in b.numpy()] for b in data] == [["Great kettle", "Too small"], ["Broke"]]


def test_end_marker_is_one_token(text_dir):
    tokenizer = kgpt2.presets.gpt2_tokenizer()
    plain, marked = (
        read_texts(text_dir / "reviews.jsonl", field="title", end=end)[0] for end in (None, "<|endoftext|>")
    )
    assert list(tokenizer(marked)) == list(tokenizer(plain)) + [50256]


def test_jsonl_record_without_field_lists_keys(text_dir):
    with pytest.raises(DataError, match="reviews.jsonl: line 1 has no field 'text'; its keys are title, body, stars"):
        kgpt2.data.text(text_dir / "reviews.jsonl", field="text")
    with pytest.raises(DataError, match="line 1: field 'stars' is a int, not a string"):
        kgpt2.data.text(text_dir / "reviews.jsonl", field="stars")
    with pytest.raises(DataError, match="needs field="):
        kgpt2.data.text(text_dir / "reviews.jsonl")


def test_malformed_jsonl_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n\n{"text": "broken}\n', "utf-8")
    with pytest.raises(DataError, match="bad.jsonl: malformed JSON at line 3, column 10"):
        kgpt2.data.text(path, field="text")


def test_multi_column_csv_is_refused(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("text\nfine\na,b\n", "utf-8")
    with pytest.raises(DataError, match="two.csv: row 3 has 2 columns"):
        kgpt2.data.text(path)


def test_missing_empty_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt' does not exist"):
        kgpt2.data.text(tmp_path / "missing.txt")
    (tmp_path / "blank.txt").write_text("\n   \n", "utf-8")
    with pytest.raises(DataError, match="blank.txt: holds no text"):
        kgpt2.data.text(tmp_path / "blank.txt")
    with pytest.raises(DataError, match="is a directory"):
        kgpt2.data.text(tmp_path)
    with pytest.raises(DataError, match="unit must be one of whole, line, paragraph"):
        kgpt2.data.text(tmp_path / "blank.txt", unit="sentence")
