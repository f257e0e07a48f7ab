"""`kgpt2.load` and `kgpt2.save`: presets in, `GPT2CausalLM` out, and back."""

import contextlib
import json
import os
import pathlib

from kgpt2 import runs
from kgpt2.atomic import check_replaceable
from kgpt2.atomic import check_writable
from kgpt2.atomic import writing_folder
from kgpt2.checks import check_choice
from kgpt2.compilation_cache import enable_compilation_cache
from kgpt2.network import OfflineError
from kgpt2.network import require_network
from kgpt2.presets.catalog import OFFICIAL_PRESETS
from kgpt2.presets.catalog import RANDOM_PRESETS
from kgpt2.presets.catalog import backbone_config
from kgpt2.presets.errors import PresetError
from kgpt2.presets.folder_checks import check_against_weights
from kgpt2.presets.folder_checks import check_backbone_config
from kgpt2.presets.folder_checks import check_keras_preset_folder
from kgpt2.presets.gpt2_layout import DISTRIBUTIONS
from kgpt2.presets.gpt2_layout import get_distribution
from kgpt2.presets.hf_folder import CONFIG_FILE
from kgpt2.presets.hf_folder import HF_NAMES
from kgpt2.presets.hf_folder import TensorFiles
from kgpt2.presets.hf_folder import looks_like_transformers_folder
from kgpt2.presets.hf_folder import read_gpt2_config
from kgpt2.presets.hf_folder import read_gpt2_tokenizer_files
from kgpt2.presets.hf_folder import weight_sizes
from kgpt2.presets.sequence_length import MAX_SEQUENCE_LENGTH
from kgpt2.presets.sequence_length import check_sequence_length
from kgpt2.presets.sharded_variables import forget_deferred
from kgpt2.presets.sharded_variables import initialize_laid_out
from kgpt2.presets.tokenizer import gpt2_tokenizer

DEFAULT_SEQUENCE_LENGTH = 1024
REMOTE_SCHEMES = ("kaggle://", "hf://", "gs://", "modelscope://")
# `kgpt2.save` puts this file in every preset it writes. Saves from before
# folder manifests (`kgpt2.atomic.MANIFEST_FILE`) are recognised by it.
PRESET_MARKER = ".kgpt2-preset"
# KerasHub writes one model.weights.h5, or an index of shards for big models.
_WEIGHTS_FILES = ("model.weights.h5", "model.weights.json")
_REPAIR_HINT = (
    "Restore the file from a backup, or save the model again with kgpt2.save."
)


def _offline_alternatives():
    names = ", ".join(RANDOM_PRESETS)
    return (
        f"Offline alternatives: the built-in presets {names} (random "
        "weights, real GPT-2 tokenizer), or a local preset directory written "
        "by `kgpt2.save` or `kgpt2 finetune`. Run `kgpt2 presets` to list them."
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
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PresetError(
            f"{config_file} is not valid JSON ({error}). " + _REPAIR_HINT
        ) from None
    inner = config.get("config") if isinstance(config, dict) else None
    if not isinstance(inner, dict):
        raise PresetError(
            f"{config_file} is not a KerasHub model config: expected a JSON "
            f"object with a \"config\" object, got {type(config).__name__}. "
            + _REPAIR_HINT
        )
    length = inner.get("max_sequence_length", MAX_SEQUENCE_LENGTH)
    if isinstance(length, bool) or not isinstance(length, int) or length < 2:
        raise PresetError(
            f"{config_file}: max_sequence_length must be an integer >= 2, got "
            f"{length!r}. " + _REPAIR_HINT
        )
    return length


def _check_weights_file(path):
    """A preset folder must hold its weights (one .h5, or a sharded index)."""
    folder = pathlib.Path(path)
    if not any((folder / name).is_file() for name in _WEIGHTS_FILES):
        raise PresetError(
            f"Preset folder '{folder}' has no weights file: "
            f"{folder / _WEIGHTS_FILES[0]} is missing. Restore it from a backup, "
            "or load an earlier checkpoint of the run."
        )


def _check_dtype(dtype):
    import keras

    try:
        policy = keras.dtype_policies.get(dtype)
        floating = all(
            "float" in str(kind) for kind in (policy.compute_dtype, policy.variable_dtype)
        ) and not getattr(policy, "quantization_mode", None)
    except (ValueError, TypeError):
        floating = False
    if not floating:
        quantize = (
            f" To quantize, load in float32 and call lm.quantize({dtype!r})."
            if str(dtype) in ("int8", "float8", "int4") else ""
        )
        raise PresetError(
            "dtype must be a floating-point Keras dtype: 'float32', 'bfloat16', "
            f"'float16', 'mixed_bfloat16' or 'mixed_float16', got {dtype!r}.{quantize}"
        )


def _resolve_local(preset):
    """Return the folder `preset` names, or None if it is not a path."""
    path = pathlib.Path(os.path.expanduser(str(preset)))
    looks_like_path = (
        os.sep in str(preset) or str(preset).startswith((".", "~")) or path.exists()
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
    return path


@contextlib.contextmanager
def _local_preset(path):
    """The preset folder to read for `path`: itself, or a run's latest checkpoint.

    A run's checkpoint is held for the block, so a trainer saving meanwhile
    can't prune it half-read.
    """
    if (path / "config.json").exists() or not runs.is_run(path):
        yield path
        return
    try:
        with runs.reading_latest(path) as preset:
            yield preset
    except runs.RunError as error:
        raise PresetError(str(error)) from None


# KerasHub draws GPT-2's token embedding with stddev 0.01. Trained from
# scratch, the output layer (the same 50,257 rows) learns the token
# frequencies first, and Adam then moves every row by about the learning
# rate per step in one shared direction: at 0.01 that shared part soon
# outweighs what tells one input token from another, and a small model sits
# at the frequencies-only loss for hundreds of steps
# (`benchmarks/demo_form.py`). Drawn ten times wider, it learns which token
# follows which within the demo's 80 steps.
RANDOM_TOKEN_EMBEDDING_STDDEV = 0.1
KERAS_HUB_TOKEN_EMBEDDING_STDDEV = 0.01


def widen_token_embedding(backbone):
    """Scale a freshly drawn GPT-2 token embedding to `RANDOM_TOKEN_EMBEDDING_STDDEV`.

    In place, so a laid-out (sharded) embedding keeps its layout.

    Example:
    ```python
    import keras_hub
    from kgpt2.presets.catalog import backbone_config
    from kgpt2.presets.loading import widen_token_embedding

    backbone = keras_hub.models.GPT2Backbone(**backbone_config("gpt2_tiny_random"))
    widen_token_embedding(backbone)
    print(round(float(backbone.token_embedding.embeddings.numpy().std()), 2))  # 0.1
    ```
    """
    embeddings = backbone.token_embedding.embeddings
    factor = RANDOM_TOKEN_EMBEDDING_STDDEV / KERAS_HUB_TOKEN_EMBEDDING_STDDEV
    embeddings.assign(embeddings * factor)


def _build_random(name, sequence_length, seed, dtype=None, laid_out=False, **unsupported):
    import keras
    import keras_hub

    if unsupported:
        raise PresetError(
            f"The built-in preset '{name}' accepts only `dtype` and `distribution` "
            f"besides sequence_length and seed; got {', '.join(sorted(unsupported))}."
        )
    keras.utils.set_random_seed(seed)
    config = backbone_config(name)
    if laid_out and dtype is not None:
        # Casting a copy would need every shard in one process.
        config["dtype"] = dtype
    if laid_out:
        # Variables wait uninitialized, then each device draws only its blocks.
        with keras.StatelessScope(initialize_variables=False):
            backbone = keras_hub.models.GPT2Backbone(**config)
        initialize_laid_out(backbone.variables, keras.distribution.distribution())
    else:
        backbone = keras_hub.models.GPT2Backbone(**config)
    widen_token_embedding(backbone)
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(
        tokenizer=gpt2_tokenizer(),
        sequence_length=sequence_length or DEFAULT_SEQUENCE_LENGTH,
    )
    lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=preprocessor)
    # Weights are drawn in float32 and then cast, so one seed gives the
    # same model (up to rounding) whatever `dtype` is.
    return lm if dtype is None or laid_out else with_dtype(lm, dtype)


def _layout_scope(distribution, config, name):
    """`distribution`'s scope for a model of backbone `config`, or no scope for None.

    Variables created in the scope are created laid out (model_parallel:
    each device initializes or reads only its shard), so no process holds
    a whole copy of a sharded model.
    """
    if distribution is None:
        return contextlib.nullcontext()
    if config is None and distribution == "model_parallel":
        raise PresetError(
            f"distribution='model_parallel' needs the shape of '{name}' before loading it, "
            "and kgpt2 knows it only for preset names and local folders: load it "
            "once, kgpt2.save it to a folder, and load that folder."
        )
    return get_distribution(distribution, config or {}).scope()


def _folder_config(folder):
    """The backbone config a local preset folder (KerasHub's or transformers') holds."""
    if looks_like_transformers_folder(folder):
        from keras_hub.src.utils.transformers import convert_gpt2

        return convert_gpt2.convert_backbone_config(read_gpt2_config(folder))
    return json.loads((pathlib.Path(folder) / "config.json").read_text("utf-8"))["config"]


def load_transformers_folder(folder, sequence_length=None, dtype=None, **unsupported):
    """Load a transformers GPT-2 folder as a `keras_hub.models.GPT2CausalLM`.

    Weights load in float32 (half-precision checkpoints are upcast exactly)
    unless `dtype` is given; the preprocessor's sequence length defaults to
    the model's `n_positions` (at most 1024).

    Raises:
        PresetError, MissingFileError: see `read_gpt2_config`, `TensorFiles`
            and `read_gpt2_tokenizer_files`.

    Example:
    ```python
    import kgpt2

    # kgpt2.load(folder) calls this for a transformers folder:
    # lm = kgpt2.load("path/to/hf/gpt2", sequence_length=128)
    ```
    """
    import keras
    import keras_hub
    from keras_hub.src.utils.transformers import convert_gpt2

    if unsupported:
        raise PresetError(
            f"A transformers folder loads with `dtype` only besides "
            f"sequence_length; got {', '.join(sorted(unsupported))}."
        )
    folder = pathlib.Path(folder)
    config = read_gpt2_config(folder)
    positions = config["n_positions"]
    check_sequence_length(sequence_length, positions, str(folder))
    keras_config = convert_gpt2.convert_backbone_config(config)
    # KerasHub's converter assumes n_inner = 4 * n_embd; transformers
    # writes null for that default.
    keras_config["intermediate_dim"] = config.get("n_inner") or 4 * config["n_embd"]
    # Before building anything: sizes, memory, and what the weights hold.
    config_file = str(folder / CONFIG_FILE)
    check_backbone_config(keras_config, config_file, HF_NAMES)
    tensors = TensorFiles(folder)
    shapes = tensors.shapes()
    if shapes is not None:
        check_against_weights(keras_config, weight_sizes(shapes), config_file,
                              ", ".join(sorted(set(tensors.shards.values()))), HF_NAMES)
    vocabulary, merges = read_gpt2_tokenizer_files(folder)
    if len(vocabulary) > config["vocab_size"]:
        raise PresetError(
            f"'{folder}': the tokenizer has {len(vocabulary)} tokens, the "
            f"model's embedding only {config['vocab_size']}."
        )

    # The variables wait for the checkpoint's values: drawing 124M random
    # numbers only to overwrite them took seconds and a second copy of the
    # weights at the peak.
    with keras.StatelessScope(initialize_variables=False):
        backbone = keras_hub.models.GPT2Backbone(**keras_config, dtype=dtype)
    convert_gpt2.convert_weights(backbone, tensors, config)
    unset = [variable.path for variable in backbone.trainable_variables
             if variable._value is None]
    if unset:
        raise PresetError(f"'{folder}' gave no value for {', '.join(unset)}.")
    for variable in backbone.variables:
        if variable._value is None:  # the dropout layers' seed states
            variable._deferred_initialize()
    forget_deferred()
    if config.get("tie_word_embeddings") is False:
        _check_tied_head(tensors, folder)

    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocabulary, merges=merges)
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(
        tokenizer=tokenizer,
        sequence_length=sequence_length or min(positions, MAX_SEQUENCE_LENGTH),
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=preprocessor)


def _check_tied_head(tensors, folder):
    import numpy as np

    try:
        head = tensors.get_tensor("lm_head.weight")
    except PresetError:
        return  # no separate head saved: transformers ties it anyway
    if not np.array_equal(head, tensors.get_tensor("wte.weight")):
        raise PresetError(
            f"'{folder}' has an lm_head different from its token embedding "
            "(tie_word_embeddings=false); KerasHub's GPT-2 ties the two."
        )


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


def _require_hugging_face(handle):
    """Fail in seconds, not after huggingface_hub's retries, when offline.

    A handle already in the Hugging Face cache loads as before; otherwise
    `HF_HUB_OFFLINE` / `KGPT2_OFFLINE`, or a server that does not answer,
    end the load at once.
    """
    from huggingface_hub import try_to_load_from_cache

    repo = handle[len("hf://"):]
    if isinstance(try_to_load_from_cache(repo, "config.json"), str):
        return
    try:
        require_network("https://huggingface.co", "HF_HUB_OFFLINE")
    except OfflineError as error:
        raise OfflineError(f"{error} '{repo}' is not in the local Hugging Face cache.") from None


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


def _from_preset(name, source, **kwargs):
    import keras_hub

    try:
        if source.startswith("hf://"):
            _require_hugging_face(source)
        return keras_hub.models.GPT2CausalLM.from_preset(source, **kwargs)
    except Exception as error:  # kagglehub/hf raise many unrelated types.
        if source.startswith(REMOTE_SCHEMES) or name in OFFICIAL_PRESETS:
            raise _download_error(name, error) from error
        raise PresetError(
            f"Could not load the preset directory '{source}': "
            f"{type(error).__name__}: {error}"
        ) from error


def load(preset, sequence_length=None, seed=0, distribution=None, **kwargs):
    """Load a GPT-2 preset as a `keras_hub.models.GPT2CausalLM`.

    Args:
        preset: an official name (`gpt2_base_en`, `gpt2_medium_en`,
            `gpt2_large_en`, `gpt2_extra_large_en`,
            `gpt2_base_en_cnn_dailymail`), a built-in offline architecture
            (`gpt2_tiny_random`, `gpt2_base_random`), a local preset
            directory (`~` expanded; a `kgpt2 finetune` run directory loads
            its latest checkpoint), a folder written by Hugging Face
            transformers' `save_pretrained`, or an `hf://` or `kaggle://` handle.
        sequence_length: the preprocessor's sequence length (at most 1024).
            Defaults to the preset's own (1024 for the built-in ones).
        seed: the initialisation seed of the random presets.
        distribution: None, "data_parallel" or "model_parallel": create the
            variables laid out over every device (of every process, after
            `kgpt2.connect_processes`) as `kgpt2.finetune` trains them with
            that distribution. Under "model_parallel" each device creates
            and reads only its shard of the weights, so no process holds a
            whole copy (JAX backend).
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
    if not isinstance(preset, (str, os.PathLike)) or not str(preset):
        raise PresetError(f"preset must be a name or a path, got {preset!r}.")
    name = str(preset)
    if kwargs.get("dtype") is not None:
        _check_dtype(kwargs["dtype"])
    if distribution is not None:
        check_choice("load", "distribution", distribution, DISTRIBUTIONS)
    # Building any model draws its weights with compiled programs.
    enable_compilation_cache()
    if name in RANDOM_PRESETS:
        check_sequence_length(sequence_length, MAX_SEQUENCE_LENGTH, name)
        with _layout_scope(distribution, backbone_config(name), name):
            return _build_random(name, sequence_length, seed, laid_out=distribution is not None, **kwargs)

    if name in OFFICIAL_PRESETS or name.startswith(REMOTE_SCHEMES):
        check_sequence_length(sequence_length, MAX_SEQUENCE_LENGTH, name)
        config = backbone_config(name) if name in OFFICIAL_PRESETS else None
        with _layout_scope(distribution, config, name):
            lm = _from_preset(name, name, **kwargs)
    else:
        local = _resolve_local(name)
        if local is None:
            known = ", ".join([*OFFICIAL_PRESETS, *RANDOM_PRESETS])
            raise PresetError(
                f"Unknown preset '{name}'. Known names: {known}; or give a "
                "local preset directory, an hf:// or a kaggle:// handle."
            )
        if looks_like_transformers_folder(local):
            config = _folder_config(local) if distribution == "model_parallel" else None
            with _layout_scope(distribution, config, name):
                return load_transformers_folder(local, sequence_length, **kwargs)
        with _local_preset(local) as folder:
            check_sequence_length(sequence_length, _local_max_length(folder), name)
            _check_weights_file(folder)
            check_keras_preset_folder(folder)
            config = _folder_config(folder) if distribution == "model_parallel" else None
            with _layout_scope(distribution, config, name):
                lm = _from_preset(name, str(folder), **kwargs)
    if sequence_length is not None:
        # The preprocessor's setter also resizes its packer.
        lm.preprocessor.sequence_length = sequence_length
    return lm


def _check_destination(path, given, overwrite):
    """Refuse a destination whose replacement could destroy files kgpt2 didn't write."""
    here = pathlib.Path.cwd().resolve()
    resolved = path.resolve()
    if str(given).strip() in ("", ".") or resolved == here or resolved in here.parents:
        raise PresetError(
            f"kgpt2.save won't write a preset over '{given}': it is the working "
            "folder or one above it. Give a new folder name, e.g. 'my_model'."
        )
    run_dir = runs.inside_run(resolved)
    if run_dir is not None:
        raise PresetError(
            f"kgpt2.save won't write into '{given}': it is (inside) the training "
            f"run {run_dir}, whose files belong to kgpt2.finetune. Save to a folder "
            "outside the run."
        )
    if not path.exists():
        return
    if not path.is_dir():
        raise PresetError(f"'{given}' is a file; a preset is a directory. Give a new folder name.")
    if not overwrite:
        raise PresetError(f"'{given}' exists; pass overwrite=True to replace it.")
    check_replaceable(path, legacy_marker=PRESET_MARKER, error=PresetError)


def save(lm, path, overwrite=True):
    """Save `lm` (with its preprocessor) as a standard KerasHub preset folder.

    The folder is written beside its destination and moved into place in one
    rename, so an interrupted save never leaves a half-written preset.
    `kgpt2.load(path)` and `keras_hub.models.GPT2CausalLM.from_preset(path)`
    both load it back with identical weights and tokenizer.

    `path` may be new, an empty folder, or (with `overwrite=True`) a preset
    an earlier `kgpt2.save` wrote, holding nothing but the files listed in
    its manifest (`.kgpt2-manifest.json`). Anything else is refused: a
    folder with any file kgpt2 did not write (a note you added, at any
    depth), the working folder or one above it, a training run or a folder
    inside one. `~` is expanded, as `kgpt2.load` does. Returns the folder
    as a `pathlib.Path`.

    Raises:
        PresetError: the destination is refused (the message says why;
            for a folder holding files kgpt2 did not write, it lists them).
        WriteError: the preset could not be written; nothing was replaced.

    Example:
    ```python
    import tempfile, kgpt2

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    folder = tempfile.mkdtemp() + "/my_preset"
    kgpt2.save(lm, folder)
    print(kgpt2.load(folder).preprocessor.sequence_length)  # 32
    ```
    """
    if not isinstance(path, (str, os.PathLike)):
        raise PresetError(f"path must be a folder path, got {path!r}.")
    given = path
    path = pathlib.Path(os.path.expanduser(str(path)))
    _check_destination(path, given, overwrite)
    check_writable(path)
    # Saves from before manifests existed carry only PRESET_MARKER.
    with writing_folder(path, legacy_marker=PRESET_MARKER, error=PresetError) as staging:
        lm.save_to_preset(str(staging))
        (staging / PRESET_MARKER).write_text("Written by kgpt2.save.\n", "utf-8")
    return path
