"""Every preset name kgpt2 knows, with its shape and where it comes from."""

import dataclasses

from kgpt2.presets.gpt2_weights import count_parameters

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
    from kgpt2.presets.tokenizer import GPT2_VOCABULARY_SIZE

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
    """One row of `kgpt2.presets.list()`."""

    name: str
    params: int
    size_on_disk_mb: float
    source: str
    description: str


def list_presets():
    """List every preset name kgpt2 resolves, with size and origin.

    Sizes are what the weights take on disk as float32 (what Kaggle serves);
    the random presets take nothing until you save them.

    Example:
    ```python
    import kgpt2

    print([info.name for info in kgpt2.presets.list()])
    ```
    """
    import keras_hub

    rows = []
    for name, shape in OFFICIAL_PRESETS.items():
        metadata = keras_hub.models.GPT2Backbone.presets[name]["metadata"]
        params = count_parameters(backbone_config(shape))
        handle = keras_hub.models.GPT2Backbone.presets[name]["kaggle_handle"]
        rows.append(
            PresetInfo(
                name=name,
                params=params,
                size_on_disk_mb=round(params * 4 / 2**20, 1),
                source=f"download: {handle}",
                description=metadata["description"],
            )
        )
    for name, spec in RANDOM_PRESETS.items():
        rows.append(
            PresetInfo(
                name=name,
                params=count_parameters(backbone_config(name)),
                size_on_disk_mb=0.0,
                source="built in (random weights, seed; real GPT-2 tokenizer)",
                description=spec["description"],
            )
        )
    return rows
