"""Atomic writes: a file is either the old one or the whole new one, never half.

Everything kgpt2 writes goes through here. The content is written to a
temporary file beside the destination, flushed, given the permissions the
user's umask gives an ordinary new file, and renamed over the destination in
one step. A failed write raises `kgpt2.errors.WriteError`, naming the file and
the cause, and leaves whatever was at the destination intact.

Example:
```python
import pathlib, tempfile
from kgpt2.atomic import write_atomically

path = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
write_atomically(path, "hello\\n")
print(path.read_text())  # hello
```
"""

import contextlib
import os
import pathlib
import shutil
import tempfile

from kgpt2.errors import InputError
from kgpt2.errors import WriteError


def _umask():
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def ordinary_mode(folder=False):
    """The mode the user's umask gives a new file (or folder).

    Example:
    ```python
    from kgpt2.atomic import ordinary_mode

    # 0o644 under a umask of 022.
    print(oct(ordinary_mode()))
    ```
    """
    return (0o777 if folder else 0o666) & ~_umask()


def make_ordinary(path):
    """Give `path` (made by `mkstemp`/`mkdtemp`, mode 0600/0700) the umask's mode.

    Example:
    ```python
    import tempfile
    from kgpt2.atomic import make_ordinary

    make_ordinary(tempfile.mkdtemp())
    ```
    """
    path = pathlib.Path(path)
    os.chmod(path, ordinary_mode(folder=path.is_dir()))


def check_writable(path):
    """Raise `WriteError` now if `path` (a file or folder to be) could not be written.

    The nearest folder that exists above `path` must be a folder, and a file
    must be creatable in it (tried, then removed), so the answer holds for
    read-only file systems and for root alike. Missing folders in between are
    fine: writers create them. Returns `path` as a `pathlib.Path`.

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.atomic import check_writable

    check_writable(pathlib.Path(tempfile.mkdtemp()) / "new" / "out.txt")
    ```
    """
    path = pathlib.Path(path)
    folder = next(
        (parent for parent in path.absolute().parents if os.path.lexists(parent)),
        pathlib.Path("/"),
    )
    if not folder.is_dir():
        raise WriteError(f"Cannot write '{path}': '{folder}' is a file, not a folder.")
    try:
        descriptor, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    except OSError as error:
        raise WriteError(
            f"Cannot write '{path}': {error.strerror or error} in '{folder}'. "
            "Choose a place you can write to."
        ) from error
    os.close(descriptor)
    os.remove(probe)
    return path


@contextlib.contextmanager
def atomic_writer(path, mode="w", encoding="utf-8"):
    """Open a temporary file that replaces `path` when the block ends cleanly.

    `mode` is `"w"` (text) or `"wb"` (bytes). If the block raises, `path` is
    untouched and the temporary file is removed.

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.atomic import atomic_writer

    path = pathlib.Path(tempfile.mkdtemp()) / "table.csv"
    with atomic_writer(path) as file:
        file.write("step,loss\\n1,2.5\\n")
    print(path.read_text().splitlines()[0])  # step,loss
    ```
    """
    if mode not in ("w", "wb"):
        raise InputError(f"atomic_writer: mode must be 'w' or 'wb', got {mode!r}.")
    path = pathlib.Path(path)
    if path.is_dir():
        raise WriteError(f"Cannot write '{path}': it is a folder; give a file name.")
    try:
        descriptor, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as error:
        raise WriteError(f"Cannot write '{path}': {error.strerror or error}.") from error
    try:
        with os.fdopen(descriptor, mode, **({} if "b" in mode else {"encoding": encoding})) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(staging, ordinary_mode())
        os.replace(staging, path)
    except OSError as error:
        raise WriteError(
            f"Cannot write '{path}': {error.strerror or error}. "
            "Anything that was there before is unchanged."
        ) from error
    finally:
        if os.path.exists(staging):
            os.remove(staging)


def write_atomically(path, content):
    """Write `content` (str or bytes) to `path` atomically; return the path.

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.atomic import write_atomically

    path = write_atomically(pathlib.Path(tempfile.mkdtemp()) / "a.bin", b"\\x00\\x01")
    print(path.read_bytes())  # b'\\x00\\x01'
    ```
    """
    path = pathlib.Path(path)
    with atomic_writer(path, "wb" if isinstance(content, bytes) else "w") as file:
        file.write(content)
    return path


def replace_folder(staging, target):
    """Move the finished folder `staging` to `target`, replacing what is there.

    `target` may be missing, an empty folder, or a folder the caller has
    checked it may replace. Two renames swap a non-empty `target` out, so a
    crash in between leaves the old version whole beside it (in a hidden
    `.<name>.old.*` folder), never a mix; the old version is then deleted.
    Both folders must be on the same file system (make `staging` beside
    `target`).

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.atomic import replace_folder

    parent = pathlib.Path(tempfile.mkdtemp())
    staging = pathlib.Path(tempfile.mkdtemp(dir=parent))
    (staging / "a.txt").write_text("new")
    replace_folder(staging, parent / "result")
    print((parent / "result" / "a.txt").read_text())  # new
    ```
    """
    staging, target = pathlib.Path(staging), pathlib.Path(target)
    try:
        if target.is_dir() and any(target.iterdir()):
            old = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.rename(target, old / target.name)
            os.rename(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    except OSError as error:
        raise WriteError(
            f"Cannot move the new '{target}' into place: {error.strerror or error}. "
            "What was there before is unchanged."
        ) from error


@contextlib.contextmanager
def writing_folder(target):
    """Yield a new empty folder beside `target` that replaces it when the block ends.

    The folder gets the user's umask permissions. If the block raises, or a
    write fails, `target` is as it was and the staging folder is removed;
    failed writes raise `WriteError` naming `target`. The caller decides
    beforehand whether `target` may be replaced (see `replace_folder`).

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.atomic import writing_folder

    target = pathlib.Path(tempfile.mkdtemp()) / "out"
    with writing_folder(target) as staging:
        (staging / "a.txt").write_text("done")
    print(sorted(p.name for p in target.iterdir()))  # ['a.txt']
    ```
    """
    target = pathlib.Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as error:
        raise WriteError(
            f"Cannot write '{target}': {error.strerror or error} in '{target.parent}'. "
            "Give a folder path whose parent folders you can write."
        ) from None
    try:
        make_ordinary(staging)
        yield staging
        replace_folder(staging, target)
    except WriteError:
        raise
    except OSError as error:
        raise WriteError(
            f"Cannot write '{target}': {error.strerror or error}. "
            "Anything that was there before is unchanged."
        ) from error
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
