"""`kgpt2.data.poetry`: the chinese-poetry collection's JSON files.

Two record formats of github.com/chinese-poetry/chinese-poetry are read:
Tang/Song shi `{author, paragraphs, title, id}` (全唐诗/poet.*.json) and
Song ci `{author, paragraphs, rhythmic}` (宋词/ci.song.*.json), where the
tune name `rhythmic` plays the role of the title. Extra keys (tags, notes,
prologue) are ignored.
"""

from kgpt2.data.errors import DataError
from kgpt2.data.files import existing_path
from kgpt2.data.files import matching_files
from kgpt2.data.files import read_json
from kgpt2.data.pipeline import build_pipeline

# Tried in order when `files` is not given: the 全唐诗 folder also holds 255
# `poet.song.*` files and the authors' biographies, which a known tutorial
# bug trains on by accident; only the Tang poems are read by default.
DEFAULT_FILES = ("poet.tang.*.json", "poet.song.*.json", "ci.song.*.json")
TITLE_KEYS = ("title", "rhythmic")


def _records(path, files):
    root = existing_path(path, "poetry()")
    if root.is_file():
        yield root, read_json(root)
        return
    patterns = (files,) if isinstance(files, str) else tuple(files or DEFAULT_FILES)
    for file in matching_files(root, patterns, "poetry()"):
        yield file, read_json(file)


def _poem_fields(file, index, record):
    """Return `(author, title, lines)` of one record, or raise naming it."""
    where = f"{file}: record {index}"
    if not isinstance(record, dict):
        raise DataError(f"{where} is a {type(record).__name__}, not a JSON object.")
    if "paragraphs" not in record:
        raise DataError(
            f"{where} has no 'paragraphs' (its keys: {', '.join(record) or 'none'}). "
            "poetry() reads chinese-poetry shi records {author, paragraphs, "
            "title} and ci records {author, paragraphs, rhythmic}."
        )
    lines = record["paragraphs"]
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise DataError(f"{where}: 'paragraphs' must be a list of strings, got {lines!r:.80}.")
    title = next((record[key] for key in TITLE_KEYS if isinstance(record.get(key), str)), "")
    return str(record.get("author", "")), title, lines


def read_poems(
    path,
    files=None,
    include_title=False,
    join="",
    limit=None,
    authors=None,
    to_simplified=True,
):
    """Read poems as strings; the arguments are those of `poetry`.

    Example:
    ```python
    from kgpt2.data.poetry import read_poems
    from kgpt2.data.tang_sample import sample_poems_path

    print(read_poems(sample_poems_path(), limit=1))
    ```
    """
    import opencc

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"limit must be None or an integer >= 1, got {limit!r}.")
    converter = opencc.OpenCC("t2s")
    if isinstance(authors, str):
        authors = [authors]
    # Compare names in simplified script so 王維 and 王维 both match.
    wanted = None if authors is None else {converter.convert(a) for a in authors}
    poems, read = [], 0
    for file, records in _records(path, files):
        if not isinstance(records, list):
            raise DataError(
                f"{file}: expected a JSON array of poem records, got a "
                f"{type(records).__name__}."
            )
        for index, record in enumerate(records):
            author, title, lines = _poem_fields(file, index, record)
            read += 1
            if wanted is not None and converter.convert(author) not in wanted:
                continue
            body = join.join(lines)
            if not body.strip():
                continue  # A few records have an empty `paragraphs` list.
            text = f"{title}\n{body}" if include_title and title else body
            poems.append(converter.convert(text) if to_simplified else text)
            if limit is not None and len(poems) == limit:
                return poems
    if not poems:
        why = f" by {', '.join(authors)}" if authors else " with any text"
        raise DataError(f"poetry('{path}'): none of the {read} records read is a poem{why}.")
    return poems


def poetry(
    path,
    files=None,
    include_title=False,
    join="",
    limit=None,
    authors=None,
    to_simplified=True,
    **pipeline,
):
    """A pipeline over chinese-poetry JSON files (Tang/Song shi or Song ci).

    Args:
        path: one JSON file, or a folder of them (e.g. the repository's
            `全唐诗` or `宋词` folder).
        files: a glob pattern (or several) for the files to read in a folder.
            By default the first of `poet.tang.*.json`, `poet.song.*.json`,
            `ci.song.*.json` that matches: in the 全唐诗 folder only the Tang
            poems, not the Song shi or the authors' files.
        include_title: put the title (for ci: the tune name `rhythmic`) on a
            line before the poem.
        join: the string between a poem's lines (its `paragraphs`); the
            lines already end in punctuation, so the default is "".
        limit: keep at most this many poems (the first ones, in file order).
        authors: a name or a list of names to keep (either script matches).
        to_simplified: convert Traditional to Simplified Chinese with OpenCC
            (`t2s`). The Tang files are Traditional; prompts such as
            春眠不觉晓 are Simplified. Song ci files are already Simplified.
        **pipeline: the shared options of `kgpt2.data.pipeline`.

    Returns:
        A `tf.data.Dataset` of string batches (or packed model inputs with
        `pack=True`): all of it, or the `subset` of a `validation_split`.

    Raises:
        FileNotFoundError: `path` does not exist.
        DataError: an empty folder, no matching files, malformed JSON (the
            message gives file, line and column), a record without
            `paragraphs`, or no poem left after filtering.

    Example:
    ```python
    import kgpt2

    data = kgpt2.data.poetry(kgpt2.data.sample_poems_path(), limit=100, batch_size=8)
    print(next(iter(data))[0].numpy().decode())
    ```
    """
    poems = read_poems(path, files, include_title, join, limit, authors, to_simplified)
    return build_pipeline(poems, f"poetry:{path}", **pipeline)
