"""Data pipelines: TFDS corpora, chinese-poetry JSON and text files.

Every adapter returns one batched `tf.data.Dataset` that `GPT2CausalLM.fit`
accepts directly, and takes the shared options of `kgpt2.data.pipeline`
(batch_size, shuffle, seed, take, cache, prefetch, validation_split and
subset, pack, sequence_length, tokenizer). A validation split works as in
`keras.utils.text_dataset_from_directory`: call the adapter once with
`subset="training"` and once with `subset="validation"`, same seed.
Packed pipelines yield token ids: fit them with the preprocessor detached
(see `is_preprocessed`).

Example:
```python
import kgpt2

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
options = dict(batch_size=8, take=10, validation_split=0.1)
poems = kgpt2.data.sample_poems_path()  # 400 Tang poems shipped with kgpt2
train = kgpt2.data.poetry(poems, subset="training", **options)
validation = kgpt2.data.poetry(poems, subset="validation", **options)
lm.fit(train, validation_data=validation, epochs=1, verbose=0)
```
"""

from kgpt2.data.download import fetch_chinese_poetry
from kgpt2.data.errors import DataError
from kgpt2.data.packing import is_preprocessed
from kgpt2.data.pipeline import from_texts
from kgpt2.data.poetry import poetry
from kgpt2.data.poetry import read_poems
from kgpt2.data.spec import check_spec
from kgpt2.data.spec import from_spec
from kgpt2.data.stats import token_stats
from kgpt2.data.tang_sample import sample_poems_path
from kgpt2.data.text_files import text
from kgpt2.data.tfds_source import reddit_tifu
from kgpt2.data.tfds_source import tfds_text

__all__ = [
    "DataError",
    "check_spec",
    "fetch_chinese_poetry",
    "from_spec",
    "from_texts",
    "is_preprocessed",
    "poetry",
    "read_poems",
    "reddit_tifu",
    "sample_poems_path",
    "tfds_text",
    "text",
    "token_stats",
]
