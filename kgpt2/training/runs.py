"""Run names: one folder per fine-tuning run, always inside `checkpoint_dir`."""

import os
import pathlib
import re

# Letters, digits, `_`, `-` and `.`, starting with a letter or digit: safe as
# a folder name on every OS, and it can never be `..` or absolute.
RUN_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def validate_run_name(run_name):
    """Check that `run_name` names a folder directly inside the checkpoint dir.

    Raises:
        ValueError: `run_name` is empty, absolute, contains a path separator
            or `..`, or has other characters than letters, digits, `_`, `-`
            and `.` (the message says which rule it broke).

    Example:
    ```python
    from kgpt2.training.runs import validate_run_name

    print(validate_run_name("run1"))  # run1
    ```
    """
    if not isinstance(run_name, str) or not run_name:
        raise ValueError(f"run_name must be a non-empty string, got {run_name!r}.")
    if os.path.isabs(run_name) or "/" in run_name or "\\" in run_name:
        raise ValueError(
            f"run_name {run_name!r} is a path; it must be a plain folder name "
            "such as 'run1' (the run lives in checkpoint_dir/run_name)."
        )
    if ".." in run_name:
        raise ValueError(f"run_name {run_name!r} contains '..'; use a plain name such as 'run1'.")
    if not RUN_NAME_PATTERN.fullmatch(run_name):
        raise ValueError(
            f"run_name {run_name!r} is not allowed: use 1-128 letters, digits, "
            "'_', '-' or '.', starting with a letter or digit."
        )
    return run_name


def run_directory(checkpoint_dir, run_name):
    """Return the folder of run `run_name`: `checkpoint_dir/run_name`.

    Example:
    ```python
    from kgpt2.training.runs import run_directory

    print(run_directory("checkpoint", "run1"))  # checkpoint/run1
    ```
    """
    validate_run_name(run_name)
    if not isinstance(checkpoint_dir, (str, os.PathLike)) or not str(checkpoint_dir):
        raise ValueError(f"checkpoint_dir must be a folder path, got {checkpoint_dir!r}.")
    return pathlib.Path(checkpoint_dir) / run_name
