"""`kgpt2.load` and `kgpt2.save`: presets in, `GPT2CausalLM` out, and back."""

import json
import os
import pathlib
import shutil
import tempfile

from kgpt2.errors import InputError
from kgpt2.presets.catalog import OFFICIAL_PRESETS
from kgpt2.presets.catalog import RANDOM_PRESETS
from kgpt2.presets.catalog import backbone_config

MAX_SEQUENCE_LENGTH = 1024
DEFAULT_SEQUENCE_LENGTH = 1024
REMOTE_SCHEMES = ("kaggle://", "hf://", "gs://", "modelscope://")


class PresetError(InputError):
    """A preset could not be resolved or loaded; the message says why."""


def _offline_alternatives():
    names = ", ".join(RANDOM_PRESETS)
    return (
        f"Offline alternatives: the built-in presets {names} (random "
        "weights, real GPT-2 tokenizer), or a local preset directory written "
        "by `kgpt2.save` or `kgpt2 finetune`. Run `kgpt2 presets` to list them."
    )


def _check_sequence_length(sequence_length, model_max, preset):
    if sequence_length is None:
        return
    if not isinstance(sequence_length, int) or sequence_length < 2:
        raise PresetError(
            f"sequence_length must be an integer >= 2, got {sequence_length!r}."
        )
    if sequence_length > model_max:
        raise PresetError(
            f"sequence_length={sequence_length} is longer than preset "
            f"'{preset}' supports: its position embedding has "
            f"{model_max} positions. Use sequence_length <= {model_max}."
        )


def _local_max_length(path):
    config_file = pathlib.Path(path) / "config.json"
    if not config_file.is_file():
        raise PresetError(
            f"'{path}' is a directory but not a KerasHub preset: it has no "
            "config.json. Point at a folder written by `kgpt2.save` or "
            "`kgpt2 finetune`, or at a checkpoint run directory."
        )
    try:
        config = json.loads(config_file.read_text("utf-8"))
    except json.JSONDecodeError as error:
        raise PresetError(f"{config_file} is not valid JSON: {error}") from None
    return config.get("config", {}).get("max_sequence_length", MAX_SEQUENCE_LENGTH)


# A `kgpt2.finetune` run directory holds one folder per checkpoint and this
# file, naming the latest checkpoint's preset folder relative to the run. It
# is replaced atomically after a checkpoint is complete, so it always names a
# whole preset, even after a crash in the middle of a save.
RUN_POINTER_FILE = "LATEST"


def resolve_run_pointer(run_dir):
    """Return the preset folder that run `run_dir`'s pointer file names.

    Returns None when `run_dir` has no pointer file.

    Raises:
        PresetError: the pointer is unreadable, leaves the run directory, or
            names a folder that is not a preset.

    Example:
    ```python
    from kgpt2.presets.loading import resolve_run_pointer

    print(resolve_run_pointer("checkpoint/no_such_run"))  # None
    ```
    """
    run_dir = pathlib.Path(run_dir)
    pointer = run_dir / RUN_POINTER_FILE
    if not pointer.is_file():
        return None
    name = pointer.read_text("utf-8").strip()
    target = run_dir / name
    inside = pathlib.PurePosixPath(name)
    if not name or inside.is_absolute() or ".." in inside.parts or "\\" in name:
        raise PresetError(f"{pointer} names {name!r}, which is not a folder inside the run.")
    if not (target / "config.json").is_file():
        raise PresetError(
            f"{pointer} names {name!r}, but {target} is not a preset folder "
            "(no config.json)."
        )
    return target


def _resolve_local(preset):
    """Return the preset folder inside `preset`, or None if it is not a path."""
    path = pathlib.Path(os.path.expanduser(str(preset)))
    looks_like_path = (
        os.sep in str(preset) or str(preset).startswith(".") or path.exists()
    )
    if not looks_like_path:
        return None
    if not path.exists():
        raise PresetError(
            f"Preset directory '{preset}' does not exist. "
            + _offline_alternatives()
        )
    if not path.is_dir():
        raise PresetError(f"Preset '{preset}' is a file; a preset is a directory.")
    if not (path / "config.json").exists():
        # A training run names its latest model in its pointer file; older
        # layouts keep it in `<run>/model`.
        latest = resolve_run_pointer(path)
        if latest is not None:
            path = latest
        elif (path / "model" / "config.json").exists():
            path = path / "model"
    return path


def _build_random(name, sequence_length, seed, dtype=None, **unsupported):
    import keras
    import keras_hub

    from kgpt2.presets.tokenizer import gpt2_tokenizer

    if unsupported:
        raise PresetError(
            f"The built-in preset '{name}' accepts only `dtype` besides "
            f"sequence_length and seed; got {', '.join(sorted(unsupported))}."
        )
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GPT2Backbone(**backbone_config(name))
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(
        tokenizer=gpt2_tokenizer(),
        sequence_length=sequence_length or DEFAULT_SEQUENCE_LENGTH,
    )
    lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=preprocessor)
    # Weights are drawn in float32 and then cast, so one seed gives the
    # same model (up to rounding) whatever `dtype` is.
    return lm if dtype is None else with_dtype(lm, dtype)


def with_dtype(lm, dtype):
    """Return a copy of `lm` built and stored in `dtype`, with `lm`'s weights.

    The copy shares `lm`'s preprocessor. Lower precision (`"bfloat16"`,
    `"float16"`) halves the bytes read per generated token and changes the
    outputs a little; `benchmarks/precision_effect.py` measures how much.

    Example:
    ```python
    import kgpt2

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    half = kgpt2.presets.with_dtype(lm, "bfloat16")
    print(half.backbone.compute_dtype)  # bfloat16
    ```
    """
    import keras_hub

    config = dict(lm.backbone.get_config(), dtype=dtype)
    backbone = type(lm.backbone).from_config(config)
    backbone.set_weights(lm.backbone.get_weights())
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=lm.preprocessor)


def _download_error(preset, error):
    import keras_hub

    if preset in OFFICIAL_PRESETS:
        handle = keras_hub.models.GPT2Backbone.presets[preset]["kaggle_handle"]
        tried = f"downloading {handle} from Kaggle with kagglehub"
    else:
        tried = f"downloading '{preset}'"
    reason = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
    return PresetError(
        f"Could not load preset '{preset}': {tried} failed ({reason}). "
        "Downloads need network access (and, for gated models, Kaggle "
        "credentials: KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json). "
        + _offline_alternatives()
    )


def load(preset, sequence_length=None, seed=0, **kwargs):
    """Load a GPT-2 preset as a `keras_hub.models.GPT2CausalLM`.

    Args:
        preset: an official name (`gpt2_base_en`, `gpt2_medium_en`,
            `gpt2_large_en`, `gpt2_extra_large_en`,
            `gpt2_base_en_cnn_dailymail`), a built-in offline architecture
            (`gpt2_tiny_random`, `gpt2_base_random`), a local preset
            directory (or a `kgpt2 finetune` run directory), a folder
            written by Hugging Face transformers' `save_pretrained`, or an
            `hf://` or `kaggle://` handle.
        sequence_length: the preprocessor's sequence length (at most 1024).
            Defaults to the preset's own (1024 for the built-in ones).
        seed: the initialisation seed of the random presets.
        **kwargs: passed to `GPT2CausalLM.from_preset` (e.g. `dtype`); the
            built-in presets take `dtype` only (their float32 weights, cast).

    Returns:
        A `GPT2CausalLM` with its `GPT2CausalLMPreprocessor` attached.

    Raises:
        PresetError: unknown name, missing directory, sequence length too
            long, or a download that failed (the message says what was tried
            and lists offline alternatives).

    Example:
    ```python
    import kgpt2

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    print(lm.preprocessor.sequence_length)  # 64
    ```
    """
    import keras_hub

    if not isinstance(preset, (str, os.PathLike)) or not str(preset):
        raise PresetError(f"preset must be a name or a path, got {preset!r}.")
    name = str(preset)
    if name in RANDOM_PRESETS:
        _check_sequence_length(sequence_length, MAX_SEQUENCE_LENGTH, name)
        return _build_random(name, sequence_length, seed, **kwargs)

    if name in OFFICIAL_PRESETS or name.startswith(REMOTE_SCHEMES):
        _check_sequence_length(sequence_length, MAX_SEQUENCE_LENGTH, name)
        source = name
    else:
        local = _resolve_local(name)
        if local is None:
            known = ", ".join([*OFFICIAL_PRESETS, *RANDOM_PRESETS])
            raise PresetError(
                f"Unknown preset '{name}'. Known names: {known}; or give a "
                "local preset directory, an hf:// or a kaggle:// handle."
            )
        from kgpt2.presets import hf_folder

        if hf_folder.looks_like_transformers_folder(local):
            return hf_folder.load_transformers_folder(local, sequence_length, **kwargs)
        _check_sequence_length(sequence_length, _local_max_length(local), name)
        source = str(local)

    try:
        lm = keras_hub.models.GPT2CausalLM.from_preset(source, **kwargs)
    except Exception as error:  # kagglehub/hf raise many unrelated types.
        if source.startswith(REMOTE_SCHEMES) or name in OFFICIAL_PRESETS:
            raise _download_error(name, error) from error
        raise PresetError(
            f"Could not load the preset directory '{source}': "
            f"{type(error).__name__}: {error}"
        ) from error
    if sequence_length is not None:
        # The preprocessor's setter also resizes its packer.
        lm.preprocessor.sequence_length = sequence_length
    return lm


def save(lm, path, overwrite=True):
    """Save `lm` (with its preprocessor) as a standard KerasHub preset folder.

    The folder is written beside its destination and moved into place in one
    rename, so an interrupted save never leaves a half-written preset.
    `kgpt2.load(path)` and `keras_hub.models.GPT2CausalLM.from_preset(path)`
    both load it back with identical weights and tokenizer.

    Example:
    ```python
    import tempfile, kgpt2

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    folder = tempfile.mkdtemp() + "/my_preset"
    kgpt2.save(lm, folder)
    print(kgpt2.load(folder).preprocessor.sequence_length)  # 32
    ```
    """
    path = pathlib.Path(path)
    if path.exists() and not overwrite:
        raise PresetError(f"'{path}' exists; pass overwrite=True to replace it.")
    if path.exists() and not path.is_dir():
        raise PresetError(f"'{path}' is a file; a preset is a directory.")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        lm.save_to_preset(str(staging))
        if path.exists():
            # Swap in two renames so that a crash leaves either version whole.
            old = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.rename(path, old / "preset")
            os.rename(staging, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return path
