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
import json
import logging
import os
import pathlib
import shutil
import socket
import tempfile

from kgpt2.errors import InputError
from kgpt2.errors import WriteError

logger = logging.getLogger("kgpt2")


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


# Every folder `writing_folder` writes lists its files here; a later
# replacement deletes only those.
MANIFEST_FILE = ".kgpt2-manifest.json"
# A staging folder's proof of origin: which process on which host made it.
STAGING_MARKER = ".kgpt2-staging.json"
_SHOWN = 5


class ForeignFilesError(InputError):
    """A folder kgpt2 would replace holds files kgpt2 did not write.

    Example:
    ```python
    from kgpt2.atomic import ForeignFilesError

    assert issubclass(ForeignFilesError, ValueError)
    ```
    """


def folder_files(folder):
    """Every entry under `folder` that is not a folder, as sorted relative POSIX paths.

    Symbolic links are listed, not followed. An empty folder is listed with
    a trailing `/`, so it counts as content too.

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.atomic import folder_files

    folder = pathlib.Path(tempfile.mkdtemp())
    (folder / "assets").mkdir()
    (folder / "assets" / "a.txt").write_text("a")
    (folder / "empty").mkdir()
    print(folder_files(folder))  # ['assets/a.txt', 'empty/']
    ```
    """
    folder = pathlib.Path(folder)
    found = []
    for root, dirs, files in os.walk(folder):
        relative = pathlib.Path(root).relative_to(folder)
        # os.walk lists links to folders among `dirs`; they are entries, not folders.
        links = [name for name in dirs if os.path.islink(os.path.join(root, name))]
        dirs[:] = [name for name in dirs if name not in links]
        found += [(relative / name).as_posix() for name in files + links]
        if not dirs and not files and not links and root != str(folder):
            found.append(relative.as_posix() + "/")
    return sorted(found)


def manifest_files(folder):
    """The files `folder`'s manifest says kgpt2 wrote (a set), or None without one.

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.atomic import manifest_files, writing_folder

    target = pathlib.Path(tempfile.mkdtemp()) / "out"
    with writing_folder(target) as staging:
        (staging / "a.txt").write_text("done")
    print(sorted(manifest_files(target)))  # ['.kgpt2-manifest.json', 'a.txt']
    ```
    """
    try:
        files = json.loads((pathlib.Path(folder) / MANIFEST_FILE).read_text("utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        return None
    return {*files, MANIFEST_FILE}


def write_manifest(folder):
    """List every file now in `folder` in its manifest (`MANIFEST_FILE`): kgpt2 wrote them.

    Call it on a folder kgpt2 made empty and filled itself, so that a later
    replacement (`check_replaceable`) deletes only these files.

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.atomic import manifest_files, write_manifest

    folder = pathlib.Path(tempfile.mkdtemp())
    (folder / "log.txt").write_text("written by us")
    write_manifest(folder)
    print(sorted(manifest_files(folder)))  # ['.kgpt2-manifest.json', 'log.txt']
    ```
    """
    folder = pathlib.Path(folder)
    files = [name for name in folder_files(folder) if name != MANIFEST_FILE]
    manifest = {"written_by": "kgpt2", "files": files}
    write_atomically(folder / MANIFEST_FILE, json.dumps(manifest, indent=1) + "\n")


def _listed_in(marker):
    """Top-level file names an old marker (`{"files": [...]}`) says kgpt2 wrote."""
    try:
        names = json.loads(marker.read_text("utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    if not isinstance(names, list):
        return set()
    return {name for name in names
            if isinstance(name, str) and "/" not in name and (marker.parent / name).is_file()}


def check_replaceable(target, legacy_marker=None, new_files=None, error=ForeignFilesError):
    """Raise `error` unless replacing `target` deletes only kgpt2's files.

    `target` may be missing or empty. Otherwise every file in it, at any
    depth, must be listed in its manifest (`MANIFEST_FILE`). A folder from
    before manifests existed counts as kgpt2's only if it holds
    `legacy_marker` and nothing but files the new version (`new_files`,
    relative paths) writes under the same names, or top-level files the
    marker itself lists (a JSON `{"files": [...]}`); until those are known
    (`new_files=None`) such a folder passes. `error` is the class raised
    (`ForeignFilesError` or a subclass of `InputError` the caller documents).

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.atomic import ForeignFilesError, check_replaceable

    folder = pathlib.Path(tempfile.mkdtemp())
    (folder / "notes.md").write_text("mine")
    try:
        check_replaceable(folder)
    except ForeignFilesError as error:
        print(str(error).split(":")[0])
    ```
    """
    target = pathlib.Path(target)
    if not os.path.lexists(target):
        return
    if target.is_symlink() or not target.is_dir():
        kind = "a symbolic link" if target.is_symlink() else "a file"
        raise error(
            f"'{target}' is {kind}, not a folder kgpt2 wrote; kgpt2 won't replace it. "
            "Give a new folder name."
        )
    present = folder_files(target)
    if not present:
        return
    ours = manifest_files(target)
    if ours is None:
        if legacy_marker is None or legacy_marker not in present:
            raise error(
                f"'{target}' is not empty and has no {MANIFEST_FILE}, so kgpt2 did not "
                "write it; kgpt2 replaces only folders it wrote. Give a new or empty "
                "folder, or move that folder away yourself."
            )
        if new_files is None:
            return
        ours = {*new_files, legacy_marker, *_listed_in(target / legacy_marker)}
    foreign = [name for name in present if name not in ours]
    if foreign:
        shown = ", ".join(foreign[:_SHOWN]) + (" ..." if len(foreign) > _SHOWN else "")
        raise error(
            f"'{target}' holds {len(foreign)} file(s) kgpt2 did not write ({shown}); "
            "kgpt2 deletes only what it wrote, so it won't replace the folder. Move "
            "those files out of it, or write to another folder."
        )


def replace_folder(staging, target, legacy_marker=None, error=ForeignFilesError):
    """Move the finished folder `staging` to `target`, replacing what is there.

    `target` may be missing, empty, or a folder whose every file kgpt2
    wrote (see `check_replaceable`, checked here again just before the
    swap); otherwise `error` is raised and both folders stay.
    Two renames swap a non-empty `target` out, so a crash in between leaves
    the old version whole beside it (in a hidden `.<name>.old.*` folder),
    never a mix; the old version is then deleted. Both folders must be on
    the same file system (make `staging` beside `target`).

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
    check_replaceable(target, legacy_marker, folder_files(staging), error)
    try:
        if target.is_dir() and any(target.iterdir()):
            old = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.rename(target, old / target.name)
            os.rename(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    except OSError as failure:
        raise WriteError(
            f"Cannot move the new '{target}' into place: {failure.strerror or failure}. "
            "What was there before is unchanged."
        ) from failure


def _process_is_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, owned by someone else
        return False
    return False


def remove_stale_staging(target):
    """Delete staging folders for `target` that a killed kgpt2 process left; return them.

    Only folders that prove their origin are touched: a hidden
    `.<name>.*` folder beside `target` holding `STAGING_MARKER`, written on
    this host by a process that no longer runs.

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.atomic import remove_stale_staging

    print(remove_stale_staging(pathlib.Path(tempfile.mkdtemp()) / "out"))  # []
    ```
    """
    target = pathlib.Path(target)
    removed = []
    try:
        candidates = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]
    except OSError:
        return removed
    for folder in candidates:
        if folder.is_symlink() or not folder.is_dir():
            continue
        try:
            marker = json.loads((folder / STAGING_MARKER).read_text("utf-8"))
            pid, host, name = marker["pid"], marker["host"], marker["target"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if name == target.name and host == socket.gethostname() and isinstance(pid, int) \
                and _process_is_gone(pid):
            shutil.rmtree(folder, ignore_errors=True)
            logger.info("Removed '%s', left by kgpt2 process %d that was killed while writing '%s'.",
                        folder, pid, target)
            removed.append(folder)
    return removed


@contextlib.contextmanager
def writing_folder(target, legacy_marker=None, error=ForeignFilesError):
    """Yield a new empty folder that replaces `target` when the block ends.

    The new folder lives in a hidden `.<name>.*` staging folder beside
    `target`, with a marker naming this process; stale staging folders a
    killed process left for `target` are removed first
    (`remove_stale_staging`). The folder gets the user's umask permissions
    and, when the block ends, a manifest (`MANIFEST_FILE`) of every file in
    it, so a later replacement deletes only those. `target` must be
    missing, empty or a folder kgpt2 wrote with nothing else in it
    (`check_replaceable`, checked before the block and again before the
    swap): otherwise `error` (`ForeignFilesError` by default), and nothing
    changes. If the block
    raises, or a write fails, `target` is as it was and the staging folder
    is removed; failed writes raise `WriteError` naming `target`.

    Example:
    ```python
    import pathlib, tempfile
    from kgpt2.atomic import writing_folder

    target = pathlib.Path(tempfile.mkdtemp()) / "out"
    with writing_folder(target) as staging:
        (staging / "a.txt").write_text("done")
    print(sorted(p.name for p in target.iterdir()))  # ['.kgpt2-manifest.json', 'a.txt']
    ```
    """
    target = pathlib.Path(target)
    remove_stale_staging(target)
    check_replaceable(target, legacy_marker, error=error)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        outer = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as failure:
        raise WriteError(
            f"Cannot write '{target}': {failure.strerror or failure} in '{target.parent}'. "
            "Give a folder path whose parent folders you can write."
        ) from None
    staging = outer / target.name
    try:
        marker = {"pid": os.getpid(), "host": socket.gethostname(), "target": target.name}
        (outer / STAGING_MARKER).write_text(json.dumps(marker) + "\n", "utf-8")
        staging.mkdir()
        make_ordinary(staging)
        yield staging
        write_manifest(staging)
        replace_folder(staging, target, legacy_marker, error)
    except (WriteError, InputError):
        raise
    except OSError as failure:
        raise WriteError(
            f"Cannot write '{target}': {failure.strerror or failure}. "
            "Anything that was there before is unchanged."
        ) from failure
    finally:
        shutil.rmtree(outer, ignore_errors=True)
