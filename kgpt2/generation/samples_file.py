"""Write generated samples to a file, one after another with a clear delimiter.

gpt-2-simple's `generate_to_file` format: each sample, a newline, then a line
of twenty `=`. The file is written with `kgpt2.atomic`, so a crash never
leaves half of it and it gets the user's ordinary file permissions. An
existing file is only replaced with `overwrite=True`.

Example:
```python
import pathlib, tempfile
from kgpt2.generation.samples_file import write_samples

path = pathlib.Path(tempfile.mkdtemp()) / "samples.txt"
write_samples(["first sample", "second sample"], path)
print(path.read_text())
```
"""

import os
import pathlib

from kgpt2.atomic import atomic_writer
from kgpt2.atomic import check_writable
from kgpt2.errors import InputError
from kgpt2.errors import WriteError

SAMPLE_DELIMITER = "=" * 20


class SamplesNotWrittenError(WriteError):
    """The samples were generated but could not be written; `texts` holds them.

    Example:
    ```python
    from kgpt2.generation.samples_file import SamplesNotWrittenError

    error = SamplesNotWrittenError(["a sample"], "Cannot write 'out.txt': disk full.")
    print(error.texts)  # ['a sample']
    ```
    """

    def __init__(self, texts, reason):
        super().__init__(
            f"{reason} The {len(texts)} generated sample(s) were not saved; "
            "they are in this error's `texts`."
        )
        self.texts = texts
        self.reason = reason


def format_samples(texts):
    """Join `texts` as they are written: each followed by a delimiter line.

    Example:
    ```python
    from kgpt2.generation.samples_file import format_samples

    print(format_samples(["one", "two"]), end="")
    ```
    """
    return "".join(f"{text}\n{SAMPLE_DELIMITER}\n" for text in texts)


def check_destination(path, overwrite=False):
    """Raise now if `write_samples(texts, path, overwrite)` could not succeed.

    Called before generating, so that a bad destination costs no generation
    time. It tries to create (and removes) a file where the samples would go.

    Raises:
        InputError: `path` is a folder, or an existing file without
            `overwrite=True`.
        WriteError: the folder it would go in is a file, or cannot be
            written to (see `kgpt2.atomic.check_writable`).

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.generation.samples_file import check_destination

    check_destination(pathlib.Path(tempfile.mkdtemp()) / "new" / "samples.txt")
    ```
    """
    path = pathlib.Path(os.path.expanduser(path))
    if path.is_dir():
        raise InputError(f"Cannot write the samples to '{path}': it is a folder; give a file name.")
    if path.exists() and not overwrite:
        raise InputError(
            f"'{path}' already exists; kgpt2 does not replace it unless asked: pass "
            "overwrite=True (kgpt2 generate --overwrite), or choose another file."
        )
    check_writable(path)
    return path


def write_samples(texts, path, overwrite=True):
    """Write `texts` to `path` (UTF-8) atomically, creating its folder; return the path.

    Raises:
        InputError: `path` is a folder, or exists and `overwrite` is False.
        WriteError: the file could not be written; what was there is intact.

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.generation.samples_file import write_samples

    path = write_samples(["a"], pathlib.Path(tempfile.mkdtemp()) / "out.txt")
    print(path.read_text(), end="")
    ```
    """
    path = check_destination(path, overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriteError(
            f"Cannot create the folder '{path.parent}': {error.strerror or error}."
        ) from error
    with atomic_writer(path) as file:
        file.write(format_samples(texts))
    return path
