"""Finding input files and reading text and JSON with errors that say where."""

import codecs
import fnmatch
import json
import pathlib
import re
import stat

from kgpt2.checks import shown_name
from kgpt2.data.errors import DataError
from kgpt2.errors import MissingFileError


def existing_path(path, what):
    """Return `path` as a `pathlib.Path` if it is a regular file or a folder.

    Anything else is refused before it is opened: a named pipe or a device
    would block `open` or never end.

    Raises:
        MissingFileError: `path` does not exist.
        DataError: `path` is a named pipe, socket or device.

    Example:
    ```python
    import tempfile
    from kgpt2.data.files import existing_path

    print(existing_path(tempfile.gettempdir(), "text()").is_dir())  # True
    ```
    """
    resolved = pathlib.Path(path).expanduser()
    try:
        mode = resolved.stat().st_mode
    except FileNotFoundError:
        raise MissingFileError(f"{what}: '{path}' does not exist.") from None
    except OSError as error:
        raise DataError(f"{what}: cannot read '{path}': {error.strerror or error}.") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file")
        raise DataError(
            f"{what}: '{path}' is {kind}, not a regular file or folder; kgpt2 reads "
            "training data from files. Save the data to a file and give its path."
        )
    return resolved


def natural_key(path):
    """Sort key that puts `poet.tang.2000.json` before `poet.tang.10000.json`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def matching_files(folder, patterns, what):
    """Files directly in `folder` matching the first pattern that matches any.

    `patterns` is tried in order; the first one with matches wins, so a
    folder holding both `poet.tang.*` and `poet.song.*` files gives only the
    Tang ones when `poet.tang.*.json` comes first.
    """
    entries = [p for p in folder.iterdir() if p.is_file()]
    if not entries:
        raise DataError(f"{what}: the directory '{folder}' is empty.")
    for pattern in patterns:
        found = [p for p in entries if fnmatch.fnmatch(p.name, pattern)]
        if found:
            return sorted(found, key=natural_key)
    names = ", ".join(sorted(p.name for p in entries)[:5])
    more = f" and {len(entries) - 5} more" if len(entries) > 5 else ""
    raise DataError(
        f"{what}: no file in '{folder}' matches {' or '.join(patterns)} "
        f"(it holds {names}{more})."
    )


def json_error(path, error, line_offset=0):
    """A `DataError` naming the file, line and column of a JSON syntax error."""
    return DataError(
        f"{path}: malformed JSON at line {error.lineno + line_offset}, "
        f"column {error.colno}: {error.msg}."
    )


def check_encoding(encoding):
    """Return the codec name of `encoding`, or raise `DataError` naming it.

    Example:
    ```python
    from kgpt2.data.files import check_encoding

    print(check_encoding("latin-1"))  # iso8859-1
    ```
    """
    try:
        return codecs.lookup(encoding).name
    except (LookupError, TypeError):
        raise DataError(
            f"{shown_name('encoding')} {encoding!r} is not a text encoding Python knows; "
            "use e.g. utf-8, latin-1 or cp1252."
        ) from None


def read_text_file(path, encoding="utf-8"):
    """The text of the file at `path`, in `encoding`.

    A UTF-8 byte-order mark (which some editors write first) is dropped, as
    `utf-8-sig` does, so it never becomes part of the data. A file that is
    not in `encoding` is a `DataError` naming the file, the byte, and how to
    give the right encoding.

    Example:
    ```python
    import codecs, pathlib, tempfile
    from kgpt2.data.files import read_text_file

    path = pathlib.Path(tempfile.mkdtemp()) / "bom.txt"
    path.write_bytes(codecs.BOM_UTF8 + b"hello")
    print(read_text_file(path))  # hello
    ```
    """
    name = check_encoding(encoding)
    try:
        return pathlib.Path(path).read_text("utf-8-sig" if name == "utf-8" else encoding)
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: not {encoding} text ({error.reason} at byte {error.start}); give its "
            "encoding: --encoding on the command line, encoding= in Python."
        ) from None


def read_json(path):
    """Parse the UTF-8 JSON file at `path`; a syntax error names file and position.

    A byte-order mark first is dropped: JSON is UTF-8, and some editors
    still write one.
    """
    try:
        return json.loads(pathlib.Path(path).read_text("utf-8-sig"))
    except json.JSONDecodeError as error:
        raise json_error(path, error) from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}).") from None
