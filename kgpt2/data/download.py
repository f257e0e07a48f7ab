"""Fetch Tang poem files from the public chinese-poetry repository."""

import pathlib

from kgpt2.data.errors import DataError

CHINESE_POETRY_RAW = (
    "https://raw.githubusercontent.com/chinese-poetry/chinese-poetry/master/"
    "%E5%85%A8%E5%94%90%E8%AF%97/poet.tang.{start}.json"  # 全唐诗/
)


def fetch_chinese_poetry(destination, files=10):
    """Download the first `files` `poet.tang.*.json` files (1,000 poems each).

    Files already in `destination` are not downloaded again. Offline, this
    raises a `DataError` naming the URL; pass a local copy of the
    repository's 全唐诗 folder to `kgpt2.data.poetry` instead.

    Returns:
        The folder holding the files, ready for `kgpt2.data.poetry`.

    Example:
    ```python
    import kgpt2

    folder = kgpt2.data.fetch_chinese_poetry("chinese-poetry", files=2)
    poems = kgpt2.data.poetry(folder, batch_size=8)
    ```
    """
    import urllib.request

    if isinstance(files, bool) or not isinstance(files, int) or not 1 <= files <= 58:
        raise DataError(f"files must be an integer from 1 to 58, got {files!r}.")
    folder = pathlib.Path(destination)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        target = folder / f"poet.tang.{index * 1000}.json"
        if target.exists():
            continue
        url = CHINESE_POETRY_RAW.format(start=index * 1000)
        partial = target.with_suffix(".json.part")
        try:
            urllib.request.urlretrieve(url, partial)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise DataError(
                f"Could not download {url} ({type(error).__name__}: {error}). "
                "Without network access, clone or copy "
                "github.com/chinese-poetry/chinese-poetry elsewhere and pass "
                "its 全唐诗 folder to kgpt2.data.poetry."
            ) from error
        partial.rename(target)  # never leave a half-downloaded .json behind
    return folder
