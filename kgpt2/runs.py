"""The layout of a fine-tuning run folder, and the rules for touching it.

A run is one folder, `checkpoint_dir/run_name`:

    .kgpt2-run               marks the folder as a run kgpt2 created
    LATEST                   names the latest checkpoint's preset folder,
                             e.g. `ckpt-00000120-3fa9c1/model`
    ckpt-00000120-3fa9c1/    one checkpoint: `model/` (a KerasHub preset),
                             `optimizer.npz`, `model_state.npz`,
                             `training_state.json`
    metrics.csv, loss.png, samples.txt
    .lock                    held by the process training the run

A checkpoint is written into a hidden `.staging-*` folder and renamed into
place; only then is `LATEST` replaced (atomically), and only after that are
older checkpoints pruned. A reader holds a shared lock on the checkpoint it
loads, and pruning skips a checkpoint someone is reading, so a reader always
gets a whole checkpoint even while a trainer saves every step.

kgpt2 adopts a folder as a run only if it is new, empty, or already a run:
it never trains into (and so never deletes files from) a folder of someone
else's files. This module only knows names and files; saving a model is
`kgpt2.training.checkpoints`'s job.

Example:
```python
import tempfile
from kgpt2 import runs

folder = runs.resolve_run_dir(tempfile.mkdtemp(), "run1")
print(folder.name, runs.is_run(folder))  # run1 False
```
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import re
import secrets
import shutil
import tempfile

from kgpt2.atomic import write_atomically
from kgpt2.errors import InputError
from kgpt2.errors import WriteError

POINTER_FILE = "LATEST"
MARKER_FILE = ".kgpt2-run"
LOCK_FILE = ".lock"
STATE_FILE = "training_state.json"
MODEL_FOLDER = "model"
CHECKPOINT_PREFIX = "ckpt-"
STAGING_PREFIX = ".staging-"
# The files of a run that `restore_from="fresh"` starts over.
LOG_FILES = ("metrics.csv", "loss.png", "samples.txt")
CHECKPOINT_PATTERN = re.compile(r"ckpt-(\d{8,})-[0-9a-f]{6}")
# Letters, digits, `_`, `-` and `.`, starting with a letter or digit: safe as
# a folder name on every OS, and it can never be `..` or absolute.
RUN_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# A reader re-reads LATEST this many times when the checkpoint it named was
# pruned before the reader could lock it.
READ_ATTEMPTS = 20


class RunError(InputError):
    """A run folder or one of its files can't be used; the message says how to go on.

    Example:
    ```python
    from kgpt2.runs import RunError

    assert issubclass(RunError, ValueError)
    ```
    """


def recovery_hint(run_dir):
    """What a user can do when the run in `run_dir` can't resume: the sentence errors end with.

    Example:
    ```python
    from kgpt2.runs import recovery_hint

    print(recovery_hint("checkpoint/run1").split(" (")[0])  # Pass restore_from='fresh'
    ```
    """
    return (
        "Pass restore_from='fresh' (`--restore-from fresh`) to start the run "
        f"over, or load the model weights alone with kgpt2.load('{run_dir}') and "
        "fine-tune them under a new run_name."
    )


def validate_run_name(run_name):
    """Check that `run_name` names a folder directly inside the checkpoint dir.

    Raises:
        RunError: `run_name` is empty, absolute, contains a path separator
            or `..`, or has other characters than letters, digits, `_`, `-`
            and `.` (the message says which rule it broke).

    Example:
    ```python
    from kgpt2.runs import validate_run_name

    print(validate_run_name("run1"))  # run1
    ```
    """
    if not isinstance(run_name, str) or not run_name:
        raise RunError(f"run_name must be a non-empty string, got {run_name!r}.")
    if os.path.isabs(run_name) or "/" in run_name or "\\" in run_name:
        raise RunError(
            f"run_name {run_name!r} is a path; it must be a plain folder name "
            "such as 'run1' (the run lives in checkpoint_dir/run_name)."
        )
    if ".." in run_name:
        raise RunError(f"run_name {run_name!r} contains '..'; use a plain name such as 'run1'.")
    if not RUN_NAME_PATTERN.fullmatch(run_name):
        raise RunError(
            f"run_name {run_name!r} is not allowed: use 1-128 letters, digits, "
            "'_', '-' or '.', starting with a letter or digit."
        )
    return run_name


def resolve_run_dir(checkpoint_dir, run_name):
    """Return the folder of run `run_name`: `checkpoint_dir/run_name` (`~` expanded).

    Example:
    ```python
    from kgpt2.runs import resolve_run_dir

    print(resolve_run_dir("checkpoint", "run1"))  # checkpoint/run1
    ```
    """
    validate_run_name(run_name)
    if not isinstance(checkpoint_dir, (str, os.PathLike)) or not str(checkpoint_dir):
        raise RunError(f"checkpoint_dir must be a folder path, got {checkpoint_dir!r}.")
    return pathlib.Path(os.path.expanduser(checkpoint_dir)) / run_name


def is_run(folder):
    """Whether `folder` is a run kgpt2 created (it has `LATEST` or the run marker).

    Example:
    ```python
    import tempfile
    from kgpt2.runs import is_run

    print(is_run(tempfile.mkdtemp()))  # False
    ```
    """
    folder = pathlib.Path(folder)
    return (folder / POINTER_FILE).is_file() or (folder / MARKER_FILE).is_file()


def inside_run(path):
    """The run folder that `path` is, or lies inside; None if there is none.

    Example:
    ```python
    from kgpt2.runs import inside_run

    print(inside_run("/"))  # None
    ```
    """
    path = pathlib.Path(os.path.abspath(os.path.expanduser(path)))
    for folder in (path, *path.parents):
        if is_run(folder):
            return folder
    return None


def checkpoint_step(folder):
    """The step in a checkpoint folder's name (`ckpt-00000120-3fa9c1`: 120), or None.

    Example:
    ```python
    from kgpt2.runs import checkpoint_step

    print(checkpoint_step("checkpoint/run1/ckpt-00000120-3fa9c1"))  # 120
    ```
    """
    match = CHECKPOINT_PATTERN.fullmatch(pathlib.Path(folder).name)
    return int(match.group(1)) if match else None


def new_checkpoint_name(step):
    """A fresh folder name for a checkpoint at `step`; a random suffix keeps it unique.

    Example:
    ```python
    from kgpt2.runs import checkpoint_step, new_checkpoint_name

    print(checkpoint_step(new_checkpoint_name(7)))  # 7
    ```
    """
    return f"{CHECKPOINT_PREFIX}{step:08d}-{secrets.token_hex(3)}"


def list_checkpoints(run_dir):
    """The run's complete checkpoint folders on disk, oldest step first.

    Example:
    ```python
    import tempfile
    from kgpt2.runs import list_checkpoints

    print(list_checkpoints(tempfile.mkdtemp()))  # []
    ```
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [
        folder for folder in run_dir.iterdir()
        if checkpoint_step(folder) is not None and folder.is_dir()
    ]
    return sorted(found, key=lambda folder: (checkpoint_step(folder), folder.name))


def latest_checkpoint(run_dir):
    """The checkpoint folder `LATEST` names, or None when the run has none yet.

    Raises:
        RunError: `LATEST` is unreadable, leaves the run folder, or names a
            folder that is not a complete checkpoint's preset.

    Example:
    ```python
    from kgpt2.runs import latest_checkpoint

    print(latest_checkpoint("checkpoint/no_such_run"))  # None
    ```
    """
    run_dir = pathlib.Path(run_dir)
    pointer = run_dir / POINTER_FILE
    try:
        name = pointer.read_text("utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise RunError(f"Can't read {pointer} ({error}). {recovery_hint(run_dir)}") from None
    inside = pathlib.PurePosixPath(name)
    if (
        not name or inside.is_absolute() or ".." in inside.parts or "\\" in name
        or len(inside.parts) != 2 or inside.parts[1] != MODEL_FOLDER
    ):
        raise RunError(f"{pointer} names {name!r}, which is not a folder inside the run. {recovery_hint(run_dir)}")
    folder = run_dir / inside.parts[0]
    if not (folder / MODEL_FOLDER / "config.json").is_file():
        raise RunError(
            f"{pointer} names {name!r}, but {folder / MODEL_FOLDER} is not a "
            f"preset folder (no config.json). {recovery_hint(run_dir)}"
        )
    return folder


@contextlib.contextmanager
def _shared_lock(folder):
    """Hold a shared lock on `folder` (None if it vanished before we got it)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; pruning can't see readers.
        yield folder
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except FileNotFoundError:
        yield None
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        # Pruning renames a checkpoint away while holding an exclusive lock:
        # a folder still at its path after we got ours stays there.
        yield folder if (folder / MODEL_FOLDER / "config.json").is_file() else None
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def reading_latest(run_dir):
    """Context manager: the latest checkpoint's preset folder, kept while the block runs.

    The checkpoint can't be pruned while the block runs, even by a trainer
    saving every step; if it was pruned between reading `LATEST` and locking
    it, `LATEST` is read again.

    Raises:
        RunError: the run has no checkpoint yet, or `LATEST` is broken.

    Example:
    ```python
    import kgpt2
    from kgpt2.runs import reading_latest

    with reading_latest("checkpoint/run1") as preset:
        lm = kgpt2.load(preset)
    ```
    """
    run_dir = pathlib.Path(run_dir)
    for _ in range(READ_ATTEMPTS):
        folder = latest_checkpoint(run_dir)
        if folder is None:
            raise RunError(
                f"Run {run_dir} has no checkpoint yet: its first one is written "
                "at the first save (save_every steps, the last step, or a stop)."
            )
        with _shared_lock(folder) as locked:
            if locked is not None:
                yield locked / MODEL_FOLDER
                return
    raise RunError(f"Run {run_dir} kept replacing its latest checkpoint while it was read; try again.")


def _remove_checkpoint(folder):
    """Delete a checkpoint unless a reader holds it; return whether it went."""
    holding = None
    try:
        import fcntl

        holding = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        fcntl.flock(holding, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:
        pass
    except OSError:  # a reader holds it, or it is gone already
        if holding is not None:
            os.close(holding)
        return False
    try:
        # Out of sight first, so a half-deleted folder never looks like a checkpoint.
        doomed = folder.with_name(f"{STAGING_PREFIX}old-{folder.name}")
        os.rename(folder, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    except OSError:
        return False
    finally:
        if holding is not None:
            os.close(holding)
    return True


def prune_checkpoints(run_dir, keep):
    """Keep the checkpoint `LATEST` names and the `keep - 1` before it; delete the rest.

    Counts what is on disk, so a resumed run keeps its earlier checkpoints.
    Checkpoints with a later step than `LATEST`'s were left by a crash and
    never completed a save; they go too. A checkpoint someone is loading
    stays until a later save. Returns the deleted folders.

    Example:
    ```python
    import tempfile
    from kgpt2.runs import prune_checkpoints

    print(prune_checkpoints(tempfile.mkdtemp(), keep=2))  # []
    ```
    """
    run_dir = pathlib.Path(run_dir)
    latest = latest_checkpoint(run_dir)
    if latest is None:
        return []
    latest_step = checkpoint_step(latest)
    older = [f for f in list_checkpoints(run_dir) if f != latest and checkpoint_step(f) < latest_step]
    kept = {latest, *older[max(0, len(older) - (keep - 1)):]} if keep > 1 else {latest}
    return [f for f in list_checkpoints(run_dir) if f not in kept and _remove_checkpoint(f)]


def point_to(run_dir, checkpoint):
    """Make `LATEST` name `checkpoint`'s preset, atomically (and durably).

    Example:
    ```python
    from kgpt2.runs import point_to

    point_to("checkpoint/run1", "checkpoint/run1/ckpt-00000120-3fa9c1")
    ```
    """
    run_dir = pathlib.Path(run_dir)
    write_atomically(run_dir / POINTER_FILE, f"{pathlib.Path(checkpoint).name}/{MODEL_FOLDER}\n")
    fsync_folder(run_dir)


def fsync_folder(folder):
    """Flush a folder's entries (renames) to disk; a no-op where that's impossible.

    Example:
    ```python
    import tempfile
    from kgpt2.runs import fsync_folder

    fsync_folder(tempfile.mkdtemp())
    ```
    """
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # e.g. folders can't be opened on Windows
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _create(run_dir):
    for folder in (run_dir, *run_dir.parents):
        if folder.exists() and not folder.is_dir():
            what = "The run folder" if folder == run_dir else "checkpoint_dir"
            raise RunError(
                f"{what} '{folder}' is a file; a run needs a folder there. "
                "Pass another checkpoint_dir (`--checkpoint-dir`) or run_name."
            )
        if folder.is_dir():
            break
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriteError(
            f"Can't create the run folder '{run_dir}': {error.strerror or error}. "
            "Pass a checkpoint_dir (`--checkpoint-dir`) you can write to."
        ) from None


def _check_adoptable(run_dir):
    if is_run(run_dir):
        return
    try:
        others = sorted(name for name in os.listdir(run_dir) if name != LOCK_FILE)
    except OSError as error:
        raise WriteError(f"Can't read the run folder '{run_dir}': {error.strerror or error}.") from None
    if others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise RunError(
            f"'{run_dir}' is not empty ({shown}) and is not a kgpt2 run, so kgpt2 "
            "won't train into it (it would replace files there). Pick another "
            "run_name or checkpoint_dir (`--run-name`, `--checkpoint-dir`)."
        )


def _check_writable(run_dir):
    try:
        if (run_dir / MARKER_FILE).is_file():
            descriptor, probe = tempfile.mkstemp(prefix=STAGING_PREFIX, dir=run_dir)
            os.close(descriptor)
            os.remove(probe)
        else:
            write_atomically(run_dir / MARKER_FILE, "A kgpt2 fine-tuning run: see LATEST.\n")
    except OSError as error:
        cause = getattr(error, "strerror", None) or error
        raise WriteError(
            f"Can't write in the run folder '{run_dir}' ({cause}), so it can't "
            "hold new checkpoints. Make it writable, or train under another "
            f"checkpoint_dir or run_name; kgpt2.load('{run_dir}') still reads its latest model."
        ) from None


def open_run(run_dir):
    """Create or adopt the run folder `run_dir` for training, and clean up after crashes.

    Adopts a folder that doesn't exist, is empty, or already is a kgpt2 run;
    refuses anything else. Checks that the folder is writable before any
    training starts, then removes staging leftovers of an interrupted save.

    Raises:
        RunError: the path (or a folder on its way) is a file, or the folder
            holds files that are not a kgpt2 run.
        WriteError: the folder can't be created or written.

    Example:
    ```python
    import tempfile
    from kgpt2.runs import is_run, open_run

    run_dir = open_run(tempfile.mkdtemp() + "/run1")
    print(is_run(run_dir))  # True
    ```
    """
    run_dir = pathlib.Path(run_dir)
    _create(run_dir)
    _check_adoptable(run_dir)
    _check_writable(run_dir)
    for leftover in run_dir.glob(STAGING_PREFIX + "*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    for leftover in run_dir.glob(f".{POINTER_FILE}.*"):  # atomic writes cut short
        leftover.unlink(missing_ok=True)
    return run_dir


def start_over(run_dir):
    """Empty a run kgpt2 owns: `LATEST` first, then its checkpoints and logs.

    `LATEST` goes first so that the run never names a checkpoint from before
    while its logs are new. Files that kgpt2 did not write stay.

    Example:
    ```python
    import tempfile
    from kgpt2.runs import open_run, start_over

    start_over(open_run(tempfile.mkdtemp() + "/run1"))
    ```
    """
    run_dir = pathlib.Path(run_dir)
    (run_dir / POINTER_FILE).unlink(missing_ok=True)
    fsync_folder(run_dir)
    for folder in list_checkpoints(run_dir):
        _remove_checkpoint(folder)
    for name in LOG_FILES:
        (run_dir / name).unlink(missing_ok=True)


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One complete checkpoint folder of a run, and its training state.

    Example:
    ```python
    from kgpt2.runs import read_checkpoint

    checkpoint = read_checkpoint("checkpoint/run1/ckpt-00000120-3fa9c1")
    print(checkpoint.step, checkpoint.preset)
    ```
    """

    path: pathlib.Path
    state: dict

    @property
    def step(self):
        return self.state["step"]

    @property
    def preset(self):
        """The KerasHub preset folder of the checkpoint's model."""
        return self.path / MODEL_FOLDER


def read_checkpoint(folder):
    """Read a checkpoint folder's `training_state.json` into a `Checkpoint`.

    Raises:
        RunError: the state file is missing, not JSON, or has no step; the
            message says how to start over or keep the weights.

    Example:
    ```python
    from kgpt2.runs import read_checkpoint

    print(read_checkpoint("checkpoint/run1/ckpt-00000120-3fa9c1").step)
    ```
    """
    folder = pathlib.Path(folder)
    state_file = folder / STATE_FILE
    try:
        state = json.loads(state_file.read_text("utf-8"))
    except FileNotFoundError:
        problem = "is missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problem = f"is not valid JSON ({error})"
    else:
        step = state.get("step") if isinstance(state, dict) else None
        if isinstance(step, int) and not isinstance(step, bool) and step >= 0:
            return Checkpoint(folder, state)
        problem = "has no training step in it"
    raise RunError(
        f"{state_file} {problem}, so training can't resume from it. {recovery_hint(folder.parent)}"
    )
