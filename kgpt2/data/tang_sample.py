"""The Tang poem sample shipped with kgpt2: training data that needs no download."""

from importlib import resources


def sample_poems_path():
    """Return the path of the Tang poem sample shipped with kgpt2.

    400 short poems from the chinese-poetry repository (MIT license, kept
    beside the file with its SOURCE.md), in its `poet.tang.*.json` format:
    `kgpt2.data.poetry` reads it.

    Example:
    ```python
    import kgpt2

    print(kgpt2.data.sample_poems_path().name)  # poet.tang.sample.json
    ```
    """
    return resources.files("kgpt2") / "assets" / "tang_sample" / "poet.tang.sample.json"
