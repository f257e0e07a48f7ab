"""Write generated samples to a file, one after another with a clear delimiter.

gpt-2-simple's `generate_to_file` format: each sample, a newline, then a line
of twenty `=`. The file is written beside its destination and renamed into
place, so a crash never leaves half of it.

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
import tempfile

SAMPLE_DELIMITER = "=" * 20


def format_samples(texts):
    """Join `texts` as they are written: each followed by a delimiter line."""
    return "".join(f"{text}\n{SAMPLE_DELIMITER}\n" for text in texts)


def write_samples(texts, path):
    """Write `texts` to `path` (UTF-8) atomically; return the path."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise ValueError(f"destination_path '{path}' is a directory; give a file name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(format_samples(texts))
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return path
