"""`kgpt2.data.text`: plain text, single-column CSV and JSON Lines files."""

import csv
import json
import re

from kgpt2.data.errors import DataError
from kgpt2.data.files import existing_path
from kgpt2.data.files import json_error
from kgpt2.data.files import read_text_file
from kgpt2.data.pipeline import build_pipeline

FORMATS = ("txt", "csv", "jsonl")
UNITS = ("whole", "line", "paragraph")


def _format_of(path, format):
    if format is not None:
        if format not in FORMATS:
            raise DataError(f"format must be one of {', '.join(FORMATS)}, got {format!r}.")
        return format
    suffix = path.suffix.lower().lstrip(".")
    return {"csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl"}.get(suffix, "txt")


def _read_txt(content, unit):
    if unit == "whole":
        return [content] if content.strip() else []
    if unit == "line":
        return [line.strip() for line in content.splitlines() if line.strip()]
    paragraphs = re.split(r"\n[ \t\r\f\v]*\n", content.replace("\r\n", "\n"))
    return [p.strip() for p in paragraphs if p.strip()]


def _read_csv(path, content, header):
    rows = csv.reader(content.splitlines(keepends=True))
    texts = []
    for number, row in enumerate(rows, start=1):
        if header and number == 1:
            continue
        if len(row) > 1:
            raise DataError(
                f"{path}: row {number} has {len(row)} columns; text() reads a "
                "single-column CSV (one text per row). For records with "
                "several fields use a .jsonl file and jsonl:PATH#field."
            )
        if row and row[0].strip():
            texts.append(row[0])
    return texts


def _read_jsonl(path, content, field):
    if not field:
        raise DataError(f"{path}: a JSON Lines file needs field= (or jsonl:PATH#field).")
    texts = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise json_error(path, error, line_offset=number - 1) from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {number} is a JSON {type(record).__name__}, not an object.")
        if field not in record:
            raise DataError(
                f"{path}: line {number} has no field '{field}'; its keys are "
                f"{', '.join(record) or 'none'}."
            )
        value = record[field]
        if not isinstance(value, str):
            raise DataError(
                f"{path}: line {number}: field '{field}' is a "
                f"{type(value).__name__}, not a string."
            )
        if value.strip():
            texts.append(value)
    return texts


def read_texts(path, unit="line", field=None, start=None, end=None, format=None, header=True,
               encoding="utf-8"):
    """Read one file's examples as strings; the arguments are those of `text`.

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.data.text_files import read_texts

    path = pathlib.Path(tempfile.mkdtemp()) / "lines.txt"
    path.write_text("first\\nsecond\\n")
    print(read_texts(path, start="<|startoftext|>"))
    ```
    """
    file = existing_path(path, "text()")
    if file.is_dir():
        raise DataError(f"text(): '{path}' is a directory; give one .txt, .csv or .jsonl file.")
    kind = _format_of(file, format)
    if unit not in UNITS:
        raise DataError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}.")
    content = read_text_file(file, encoding)
    if kind == "txt":
        texts = _read_txt(content, unit)
    elif kind == "csv":
        texts = _read_csv(file, content, header)
    else:
        texts = _read_jsonl(file, content, field)
    if not texts:
        raise DataError(f"{file}: holds no text.")
    return [f"{start or ''}{t}{end or ''}" for t in texts]


def text(path, unit="line", field=None, start=None, end=None, format=None, header=True,
         encoding="utf-8", **pipeline):
    """A pipeline over a text file: .txt, single-column .csv, or .jsonl.

    Args:
        path: the file. Its suffix picks the format (`.csv`, `.jsonl`;
            anything else is plain text) unless `format` says otherwise.
        unit: for plain text, what one example is: `"line"` (blank lines
            skipped), `"paragraph"` (separated by blank lines) or `"whole"`
            (the whole file; use `pack=True` so it is cut into windows
            instead of truncated to the sequence length).
        field: for .jsonl, the key holding the text of each record.
        start, end: markers put around every example, as gpt-2-simple does
            (e.g. `start="<|startoftext|>"`, `end="<|endoftext|>"`), so that
            generation can later stop at `end`.
        format: `"txt"`, `"csv"` or `"jsonl"`, to override the suffix.
        header: whether a CSV's first row is a header (skipped).
        encoding: the file's text encoding; with `"utf-8"` a leading
            byte-order mark is dropped, as `"utf-8-sig"` does.
        **pipeline: the shared options of `kgpt2.data.pipeline`.

    Returns:
        A `tf.data.Dataset` of string batches (or packed model inputs with
        `pack=True`): all of it, or the `subset` of a `validation_split`.

    Raises:
        FileNotFoundError: `path` does not exist.
        DataError: a directory, an empty file, a CSV row with several
            columns, malformed JSON (file, line, column), or a record
            without `field` (its keys are listed).

    Example:
    ```python
    import pathlib, tempfile
    import kgpt2

    path = pathlib.Path(tempfile.mkdtemp()) / "jokes.jsonl"
    path.write_text('{"joke": "A pun."}\\n{"joke": "Another pun."}\\n')
    data = kgpt2.data.text(path, field="joke", end="<|endoftext|>", batch_size=2)
    print(sorted(next(iter(data)).numpy()))
    ```
    """
    texts = read_texts(path, unit, field, start, end, format, header, encoding)
    return build_pipeline(texts, f"text:{path}", **pipeline)
