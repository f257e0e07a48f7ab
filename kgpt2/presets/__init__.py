"""GPT-2 presets: the official KerasHub ones and built-in offline ones.

Listing presets (`names`, `info`) needs neither Keras nor TensorFlow.

Example:
```python
import kgpt2

for name in kgpt2.presets.names():
    info = kgpt2.presets.info(name)
    print(info.name, info.params, info.source)
```
"""

from kgpt2.presets.catalog import OFFICIAL_PRESETS
from kgpt2.presets.catalog import RANDOM_PRESETS
from kgpt2.presets.catalog import PresetInfo
from kgpt2.presets.catalog import info
from kgpt2.presets.catalog import names
from kgpt2.presets.errors import PresetError
from kgpt2.presets.loading import load
from kgpt2.presets.loading import save
from kgpt2.presets.loading import with_dtype
from kgpt2.presets.sequence_length import MAX_SEQUENCE_LENGTH
from kgpt2.presets.tokenizer import gpt2_tokenizer

__all__ = [
    "MAX_SEQUENCE_LENGTH",
    "OFFICIAL_PRESETS",
    "RANDOM_PRESETS",
    "PresetError",
    "PresetInfo",
    "gpt2_tokenizer",
    "info",
    "load",
    "names",
    "save",
    "with_dtype",
]
