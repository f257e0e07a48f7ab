"""Every preset name kgpt2 knows, with its shape and where it comes from."""

import dataclasses

from kgpt2.errors import InputError
from kgpt2.presets.gpt2_weights import count_parameters
from kgpt2.presets.tokenizer import GPT2_VOCABULARY_SIZE

# GPT-2's published shapes (OpenAI, 2019). They need no download, so memory
# planning and `kgpt2 presets` work offline.
GPT2_SHAPES = {
    "base": dict(num_layers=12, num_heads=12, hidden_dim=768),
    "medium": dict(num_layers=24, num_heads=16, hidden_dim=1024),
    "large": dict(num_layers=36, num_heads=20, hidden_dim=1280),
    "extra_large": dict(num_layers=48, num_heads=25, hidden_dim=1600),
}

OFFICIAL_PRESETS = {
    "gpt2_base_en": "base",
    "gpt2_medium_en": "medium",
    "gpt2_large_en": "large",
    "gpt2_extra_large_en": "extra_large",
    "gpt2_base_en_cnn_dailymail": "base",
}

# KerasHub's descriptions and Kaggle version of the official presets, kept
# here so that listing them needs neither KerasHub nor TensorFlow
# (tests/test_presets.py checks them against KerasHub's registry).
KAGGLE_VERSION = 3
OFFICIAL_DESCRIPTIONS = {
    "gpt2_base_en": "12-layer GPT-2 model where case is maintained. Trained on WebText.",
    "gpt2_medium_en": "24-layer GPT-2 model where case is maintained. Trained on WebText.",
    "gpt2_large_en": "36-layer GPT-2 model where case is maintained. Trained on WebText.",
    "gpt2_extra_large_en": "48-layer GPT-2 model where case is maintained. Trained on WebText.",
    "gpt2_base_en_cnn_dailymail": "12-layer GPT-2 model where case is maintained. "
    "Finetuned on the CNN/DailyMail summarization dataset.",
}

# Built-in offline architectures: random weights from a seed, real tokenizer.
RANDOM_PRESETS = {
    "gpt2_tiny_random": dict(
        num_layers=2,
        num_heads=2,
        hidden_dim=64,
        intermediate_dim=256,
        description="2 layers, 64 hidden: fast enough for tests and the demo.",
    ),
    "gpt2_base_random": dict(
        **GPT2_SHAPES["base"],
        intermediate_dim=4 * 768,
        description="Exactly the 124M gpt2_base_en shape, random weights: "
        "for speed and memory measurements.",
    ),
}


def backbone_config(shape_name_or_preset):
    """Return the `GPT2Backbone` config of an official or built-in preset.

    Example:
    ```python
    from kgpt2.presets.catalog import backbone_config

    print(backbone_config("gpt2_medium_en")["num_layers"])  # 24
    ```
    """
    name = shape_name_or_preset
    if name in RANDOM_PRESETS:
        config = dict(RANDOM_PRESETS[name])
        config.pop("description")
    else:
        shape = GPT2_SHAPES[OFFICIAL_PRESETS.get(name, name)]
        config = dict(shape, intermediate_dim=4 * shape["hidden_dim"])
    return dict(
        config,
        vocabulary_size=GPT2_VOCABULARY_SIZE,
        max_sequence_length=1024,
        dropout=0.1,
    )


@dataclasses.dataclass(frozen=True)
class PresetInfo:
    """What `kgpt2.presets.info(name)` says about a preset.

    Attributes:
        name: the preset name `kgpt2.load` takes.
        params: the backbone's parameter count.
        float32_mb: what its weights take as float32, in MiB: the download
            for an official preset, what `kgpt2.save` writes for a built-in one.
        source: where the weights come from.
        description: one line about the model.
    """

    name: str
    params: int
    float32_mb: float
    source: str
    description: str


def names():
    """Return every preset name kgpt2 resolves: the official ones, then the built-in ones.

    Example:
    ```python
    import kgpt2

    print(kgpt2.presets.names()[-2:])  # ['gpt2_tiny_random', 'gpt2_base_random']
    ```
    """
    return [*OFFICIAL_PRESETS, *RANDOM_PRESETS]


def info(name):
    """Return a `PresetInfo` (size and origin) for a preset name, offline.

    Raises:
        kgpt2.errors.InputError: `name` is not one of `names()`.

    Example:
    ```python
    import kgpt2

    base = kgpt2.presets.info("gpt2_base_random")
    print(base.params, base.float32_mb)  # 124439808 474.7
    ```
    """
    if name not in OFFICIAL_PRESETS and name not in RANDOM_PRESETS:
        raise InputError(
            f"Unknown preset {name!r}; kgpt2.presets.names() lists them: "
            f"{', '.join(names())}."
        )
    params = count_parameters(backbone_config(name))
    if name in OFFICIAL_PRESETS:
        source = f"download: kaggle://keras/gpt2/keras/{name}/{KAGGLE_VERSION}"
        description = OFFICIAL_DESCRIPTIONS[name]
    else:
        source = "built in (random weights, seed; real GPT-2 tokenizer)"
        description = RANDOM_PRESETS[name]["description"]
    return PresetInfo(
        name=name,
        params=params,
        float32_mb=round(params * 4 / 2**20, 1),
        source=source,
        description=description,
    )
