"""Check a preset folder's configs, weights and tokenizer files before building anything.

A preset folder is data from anywhere: its config can ask for a model that
takes hours to build or more memory than the machine has, name a class or
dtype Keras does not know, or describe a model its weights do not hold, and
its tokenizer files can be empty or not JSON. Each check here reads only the
small files and the weights file's header, and raises a one-line
`PresetError` naming the file and the field.

Example:
```python
from kgpt2.presets.catalog import backbone_config
from kgpt2.presets.folder_checks import check_backbone_config

check_backbone_config(backbone_config("gpt2_tiny_random"), "config.json")
```
"""

import json
import pathlib
import re

from kgpt2.presets.errors import PresetError
from kgpt2.presets.gpt2_weights import count_parameters
from kgpt2.presets.memory import check_fits
from kgpt2.presets.memory import load_bytes

# The class each JSON file of a KerasHub GPT-2 preset must hold.
PRESET_CLASSES = {
    "config.json": "GPT2Backbone",
    "task.json": "GPT2CausalLM",
    "preprocessor.json": "GPT2CausalLMPreprocessor",
    "tokenizer.json": "GPT2Tokenizer",
}
# The GPT2Backbone sizes, each a positive integer.
SIZE_FIELDS = ("vocabulary_size", "num_layers", "num_heads", "hidden_dim",
               "intermediate_dim", "max_sequence_length")
# Token ids are int32.
MAX_VOCABULARY = 2**31 - 1
FLOAT_DTYPES = ("float32", "float16", "bfloat16", "mixed_float16", "mixed_bfloat16")
# What the tokenizer's and preprocessor's layers compute in.
OTHER_DTYPES = ("int32", "int64", "string")
DTYPE_POLICY_CLASSES = ("DTypePolicy", "FloatDTypePolicy")
# Objects a serialized object holds, by field; KerasHub builds them from there.
NESTED_OBJECTS = {
    "GPT2CausalLM": {"backbone": "GPT2Backbone", "preprocessor": "GPT2CausalLMPreprocessor"},
    "GPT2CausalLMPreprocessor": {"tokenizer": "GPT2Tokenizer"},
}
TOKENIZER_FOLDER = pathlib.Path("assets") / "tokenizer"
REPAIR = "Restore the folder from a backup, or save or export the model again."


def _read_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text("utf-8"))
    except json.JSONDecodeError as error:
        raise PresetError(
            f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg}). {REPAIR}"
        ) from None
    except UnicodeDecodeError as error:
        raise PresetError(f"{path} is not UTF-8 text (byte {error.start}). {REPAIR}") from None
    except OSError as error:
        raise PresetError(f"Cannot read {path}: {error.strerror or error}.") from None


def _check_object(path, field, content, expected, backbones):
    """Check a serialized Keras object (and the ones nested in it); collect backbone configs."""
    where = f"{path}: {field + '.' if field else ''}"
    name = content.get("class_name") if isinstance(content, dict) else None
    registered = content.get("registered_name") if isinstance(content, dict) else None
    module = content.get("module") if isinstance(content, dict) else None
    if (name != expected or registered not in (None, f"keras_hub>{expected}")
            or not (module is None or str(module).startswith("keras_hub."))):
        raise PresetError(
            f"{where}class_name {name!r} (module {module!r}, registered_name "
            f"{registered!r}) is not the {expected} a GPT-2 preset holds there. {REPAIR}"
        )
    inner = content.get("config")
    if not isinstance(inner, dict):
        raise PresetError(f"{where}config is not a JSON object. {REPAIR}")
    floating = expected in ("GPT2Backbone", "GPT2CausalLM")
    _check_dtype(f"{where}config.dtype", inner.get("dtype"),
                 FLOAT_DTYPES if floating else FLOAT_DTYPES + OTHER_DTYPES)
    if expected == "GPT2Backbone":
        backbones.append((str(path), f"{field + '.' if field else ''}config.", inner))
    for key, nested in NESTED_OBJECTS.get(expected, {}).items():
        if inner.get(key) is not None:
            _check_object(path, f"{field + '.' if field else ''}config.{key}", inner[key], nested, backbones)


def _check_dtype(where, dtype, allowed):
    if isinstance(dtype, dict):
        policy_class = dtype.get("class_name")
        inner = dtype.get("config")
        if (policy_class not in DTYPE_POLICY_CLASSES or dtype.get("module") not in (None, "keras")
                or not isinstance(inner, dict)):
            raise PresetError(
                f"{where} names class {policy_class!r}, not a Keras DTypePolicy. {REPAIR}"
            )
        dtype = inner.get("name")
    if dtype is not None and dtype not in allowed:
        raise PresetError(f"{where} is {dtype!r}, not one of {', '.join(allowed)}. {REPAIR}")


def check_backbone_config(config, source, names=None):
    """Check a `GPT2Backbone` config's sizes and its memory need; raise `PresetError`.

    `source` names the file in messages and `names` maps KerasHub's field
    names to the file's own (a transformers `config.json` says `n_layer`).
    Every size must be a positive integer, `num_heads` must divide
    `hidden_dim`, the vocabulary must fit int32 token ids, and the model
    must fit in this machine's memory (`kgpt2.presets.memory`).

    Example:
    ```python
    from kgpt2.presets.catalog import backbone_config
    from kgpt2.presets.errors import PresetError
    from kgpt2.presets.folder_checks import check_backbone_config

    config = dict(backbone_config("gpt2_tiny_random"), hidden_dim=10**7)
    try:
        check_backbone_config(config, "config.json")
    except PresetError as error:
        print(str(error)[:36])  # config.json: the model it describes
    ```
    """
    names = names or {}

    def shown(field):
        return f"{names.get(field, field)}={config.get(field)!r}"

    for field in SIZE_FIELDS:
        value = config.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PresetError(f"{source}: {shown(field)} must be a positive integer. {REPAIR}")
    if config["hidden_dim"] % config["num_heads"]:
        raise PresetError(
            f"{source}: {shown('hidden_dim')} is not divisible by {shown('num_heads')}. {REPAIR}"
        )
    if config["vocabulary_size"] > MAX_VOCABULARY:
        raise PresetError(
            f"{source}: {shown('vocabulary_size')} is more than int32 token ids can "
            f"number ({MAX_VOCABULARY}). {REPAIR}"
        )
    dropout = config.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise PresetError(f"{source}: {shown('dropout')} must be a number in [0, 1). {REPAIR}")
    sizes = ", ".join(shown(field) for field in ("num_layers", "hidden_dim", "vocabulary_size"))
    check_fits(
        load_bytes(config),
        f"{source}: the model it describes ({sizes}: {count_parameters(config):.3g} parameters)",
        "Check the config's sizes, or load it on a machine with more memory.",
        error=PresetError,
    )


def check_against_weights(config, found, source, weights_file, names=None):
    """Raise `PresetError` if a config's sizes differ from those `found` in the weights.

    Example:
    ```python
    from kgpt2.presets.folder_checks import check_against_weights

    check_against_weights({"num_layers": 2}, {"num_layers": 2}, "config.json", "model.weights.h5")
    ```
    """
    names = names or {}
    for field, value in found.items():
        if config.get(field) != value:
            name = names.get(field, field)
            raise PresetError(
                f"{source}: {name}={config.get(field)!r} does not match the weights in "
                f"{weights_file}, which hold {name.rsplit('.', 1)[-1]}={value}. {REPAIR}"
            )


def keras_weight_sizes(path):
    """The GPT-2 sizes a KerasHub `model.weights.h5` holds, read from its layout only.

    Example:
    ```python
    import tempfile, kgpt2
    from kgpt2.presets.folder_checks import keras_weight_sizes

    folder = kgpt2.save(kgpt2.load("gpt2_tiny_random"), tempfile.mkdtemp() + "/p")
    print(keras_weight_sizes(folder / "model.weights.h5")["num_layers"])  # 2
    ```
    """
    import h5py

    try:
        with h5py.File(path, "r") as file:
            layers = file["layers"]
            token = layers["reversible_embedding/vars/0"].shape
            position = layers["position_embedding/vars/0"].shape
            decoders = [name for name in layers if re.fullmatch(r"transformer_decoder(_\d+)?", name)]
            first = layers["transformer_decoder"]
            inner = first["_feedforward_intermediate_dense/vars/0"].shape
            query = first["_self_attention_layer/query_dense/vars/0"].shape
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise PresetError(
            f"{path} is not the weights of a KerasHub GPT-2 ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'unreadable'}). {REPAIR}"
        ) from None
    return {
        "vocabulary_size": token[0], "hidden_dim": token[1], "max_sequence_length": position[0],
        "num_layers": len(decoders), "intermediate_dim": inner[1], "num_heads": query[1],
    }


def check_merges(path, merges):
    """Raise `PresetError` unless `merges` (lines of `path`) are BPE merges: one `a b` pair each.

    Example:
    ```python
    from kgpt2.presets.folder_checks import check_merges

    check_merges("merges.txt", ["Ġ t", "Ġ a"])
    ```
    """
    if not merges:
        raise PresetError(
            f"{path} holds no merges: GPT-2's tokenizer needs its list of BPE "
            f"merges ('a b' pairs, one a line). {REPAIR}"
        )
    for number, merge in enumerate(merges, 1):
        if not isinstance(merge, str) or len(merge.split(" ")) != 2:
            raise PresetError(
                f"{path}: merge {number} ({merge!r}) is not two tokens separated by "
                f"one space. {REPAIR}"
            )


def check_vocabulary(path, vocabulary):
    """Raise `PresetError` unless `vocabulary` maps tokens to ids and holds `<|endoftext|>`.

    Example:
    ```python
    from kgpt2.presets.folder_checks import check_vocabulary

    check_vocabulary("vocab.json", {"<|endoftext|>": 0})
    ```
    """
    if not isinstance(vocabulary, dict) or not all(
            isinstance(index, int) and not isinstance(index, bool) for index in vocabulary.values()):
        raise PresetError(f"{path} is not a JSON object of token ids. {REPAIR}")
    if "<|endoftext|>" not in vocabulary:
        raise PresetError(f"{path}: the vocabulary lacks GPT-2's <|endoftext|> token. {REPAIR}")


def read_merges(path):
    """Read a `merges.txt` file's merges (its `#version` line skipped).

    Example:
    ```python
    from kgpt2.presets.folder_checks import read_merges
    from kgpt2.presets.tokenizer import tokenizer_asset_dir

    print(read_merges(tokenizer_asset_dir() / "merges.txt")[0])  # Ġ t
    ```
    """
    try:
        lines = pathlib.Path(path).read_text("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise PresetError(f"{path} is not UTF-8 text (byte {error.start}). {REPAIR}") from None
    except OSError as error:
        raise PresetError(f"Cannot read {path}: {error.strerror or error}.") from None
    return [line for line in lines if line and not line.startswith("#version")]


def check_keras_preset_folder(folder):
    """Check a KerasHub preset folder before Keras builds anything from it.

    Each JSON file's class and dtype, the backbone's sizes against sane
    bounds, this machine's memory and the shapes in `model.weights.h5`,
    and the tokenizer's `vocabulary.json` and `merges.txt`. Raises
    `PresetError` naming the file and the field.

    Example:
    ```python
    import tempfile, kgpt2
    from kgpt2.presets.folder_checks import check_keras_preset_folder

    check_keras_preset_folder(kgpt2.save(kgpt2.load("gpt2_tiny_random"), tempfile.mkdtemp() + "/p"))
    ```
    """
    folder = pathlib.Path(folder)
    backbones = []
    for name, expected in PRESET_CLASSES.items():
        path = folder / name
        if path.is_file():
            _check_object(path, "", _read_json(path), expected, backbones)
    if not backbones:
        raise PresetError(f"{folder / 'config.json'} is missing: a preset folder holds its model config there.")
    weights = folder / "model.weights.h5"
    # A sharded model has an index instead; Keras checks its shards.
    found = keras_weight_sizes(weights) if weights.is_file() else None
    # KerasHub builds the backbone from task.json when there is one, else from config.json.
    for source, prefix, config in backbones:
        names = {field: prefix + field for field in (*SIZE_FIELDS, "dropout")}
        check_backbone_config(config, source, names)
        if found is not None:
            check_against_weights(config, found, source, str(weights), names)
    tokenizer = folder / TOKENIZER_FOLDER
    vocabulary_file, merges_file = tokenizer / "vocabulary.json", tokenizer / "merges.txt"
    for path in (vocabulary_file, merges_file):
        if not path.is_file():
            raise PresetError(f"{path} is missing: a GPT-2 preset holds its tokenizer there. {REPAIR}")
    check_vocabulary(vocabulary_file, _read_json(vocabulary_file))
    check_merges(merges_file, read_merges(merges_file))
