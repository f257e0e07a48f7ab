"""`kgpt2.data.from_spec`: the CLI's `--data SPEC` strings."""

import inspect
import pathlib

from kgpt2.checks import shown_name
from kgpt2.data.errors import DataError
from kgpt2.data.files import check_encoding
from kgpt2.data.pipeline import check_options
from kgpt2.data.poetry import poetry
from kgpt2.data.text_files import text
from kgpt2.data.tfds_source import tfds_text
from kgpt2.errors import MissingFileError

SCHEMES = {
    "tfds": "tfds:NAME[/CONFIG]",
    "poetry": "poetry:PATH",
    "text": "text:PATH",
    "csv": "csv:PATH",
    "jsonl": "jsonl:PATH#field",
}


def _adapter_options(adapter, *taken):
    """The options of `adapter` that a spec leaves to the caller."""
    parameters = inspect.signature(adapter).parameters.values()
    return tuple(
        p.name for p in parameters
        if p.kind is p.POSITIONAL_OR_KEYWORD and p.name not in taken
    )


def _allowed():
    return ", ".join(SCHEMES.values())


def check_spec(spec, text_key=None, encoding=None):
    """Check a `--data` spec without reading any data or loading a model.

    The scheme must be known, the spec must name something, and the file or
    folder of a `poetry:`, `text:`, `csv:` or `jsonl:` spec must exist, so
    that a mistake is reported before a model is loaded or downloaded.

    Args:
        spec: the spec string.
        text_key: the CLI's `--text-key`, if given.
        encoding: the CLI's `--encoding`, if given: a known encoding, for
            a `text:`, `csv:` or `jsonl:` spec.

    Returns:
        `(scheme, rest, field)`: the scheme, what follows it (for `jsonl:`,
        the path without `#field`), and the `jsonl:` field (else None).

    Raises:
        DataError: no scheme, an unknown scheme (the allowed ones are
            listed), nothing named, a `jsonl:` spec without a field, a
            `text_key` for a scheme that has no keys, or an unknown
            `encoding` or one for a scheme that reads no text files.
        MissingFileError: the named file or folder does not exist.

    Example:
    ```python
    import kgpt2

    print(kgpt2.data.check_spec(f"poetry:{kgpt2.data.sample_poems_path()}")[0])  # poetry
    ```
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise DataError(f"Data spec {spec!r} has no scheme; use one of {_allowed()}.")
    scheme, _, rest = spec.partition(":")
    if scheme not in SCHEMES:
        raise DataError(f"Unknown data spec scheme '{scheme}' in {spec!r}; use one of {_allowed()}.")
    if not rest:
        raise DataError(f"Data spec {spec!r} names nothing; the form is {SCHEMES[scheme]}.")
    field = None
    if scheme == "jsonl":
        path, hash_sign, field = rest.rpartition("#")
        if not hash_sign:
            path, field = rest, None
        if field and text_key and field != text_key:
            raise DataError(f"Data spec {spec!r} names field '{field}' but text_key is '{text_key}'.")
        field = field or text_key
        if not field:
            raise DataError(f"Data spec {spec!r} needs a field: jsonl:PATH#field (or --text-key).")
        rest = path
    elif text_key is not None and scheme != "tfds":
        raise DataError(
            f"text_key applies to tfds: and jsonl: specs only, not to {scheme}: ({spec!r})."
        )
    if encoding is not None:
        if scheme in ("tfds", "poetry"):
            raise DataError(
                f"{shown_name('encoding')} applies to text:, csv: and jsonl: specs only, "
                f"not to {scheme}: ({spec!r})."
            )
        check_encoding(encoding)
    if scheme != "tfds" and not pathlib.Path(rest).expanduser().exists():
        raise MissingFileError(
            f"Data spec {spec!r}: '{rest}' does not exist. Check the path "
            f"(the form is {SCHEMES[scheme]})."
        )
    return scheme, rest, field


def from_spec(spec, text_key=None, **pipeline):
    """A pipeline from a spec string, as given to `kgpt2 ... --data SPEC`.

    Specs: `tfds:NAME[/CONFIG]` (`tfds_text`), `poetry:PATH` (`poetry`),
    `text:PATH` (`text`, one example per line), `csv:PATH` (a single-column
    CSV) and `jsonl:PATH#field` (a JSON Lines file's `field`).

    Args:
        spec: the spec string.
        text_key: the text feature of a `tfds:` dataset, or the field of a
            `jsonl:` file given without `#field` (the CLI's `--text-key`).
        **pipeline: the shared options of `kgpt2.data.pipeline`, and any
            other keyword of the adapter the spec names (e.g.
            `to_simplified` for `poetry:`).

    Raises:
        DataError, MissingFileError: what `check_spec` finds wrong, plus
            whatever the adapter raises.

    Example:
    ```python
    import kgpt2

    data = kgpt2.data.from_spec(f"poetry:{kgpt2.data.sample_poems_path()}", batch_size=8)
    ```
    """
    scheme, rest, field = check_spec(spec, text_key)
    # Refused before any file is read or dataset downloaded.
    adapter, taken = {
        "tfds": (tfds_text, ("name", "text_key")),
        "poetry": (poetry, ("path",)),
    }.get(scheme, (text, ("path", "field", "format")))
    check_options(f"from_spec({spec!r})", pipeline, _adapter_options(adapter, *taken))
    if scheme == "tfds":
        return tfds_text(rest, text_key=text_key, **pipeline)
    if scheme == "jsonl":
        return text(rest, field=field, format="jsonl", **pipeline)
    if scheme == "poetry":
        return poetry(rest, **pipeline)
    return text(rest, format="csv" if scheme == "csv" else "txt", **pipeline)
