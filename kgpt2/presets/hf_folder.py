"""Read a GPT-2 checkpoint folder written by Hugging Face transformers.

`GPT2LMHeadModel.save_pretrained` writes `config.json` and `model.safetensors`
(older versions `pytorch_model.bin`; large models shard either with an
`.index.json`); a tokenizer's `save_pretrained` writes `tokenizer.json`
(transformers 5) or `vocab.json` + `merges.txt` (transformers 4). KerasHub's
transformers converter maps the config and tensors onto `GPT2Backbone`; this
module reads the files from a local folder, in any of those layouts, checks
that they describe a GPT-2 KerasHub computes the same way, and says by name
what is missing or different when they don't. It only reads: building the
model from what it read is `kgpt2.presets.loading.load_transformers_folder`.

Example:
```python
import kgpt2

# A folder made by `model.save_pretrained(folder)` and `tokenizer.save_pretrained(folder)`:
# lm = kgpt2.load("path/to/that/folder")
```
"""

import json
import pathlib

from kgpt2.errors import MissingFileError
from kgpt2.presets.errors import PresetError
from kgpt2.presets.folder_checks import check_merges
from kgpt2.presets.folder_checks import check_vocabulary
from kgpt2.presets.folder_checks import read_merges

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_FILE = "pytorch_model.bin"
PYTORCH_INDEX = "pytorch_model.bin.index.json"
TOKENIZER_JSON = "tokenizer.json"
VOCABULARY_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
# Files only a transformers checkpoint folder has (a KerasHub preset has
# none of them).
TRANSFORMERS_FILES = (
    SAFETENSORS_FILE, SAFETENSORS_INDEX, PYTORCH_FILE, PYTORCH_INDEX,
    "tf_model.h5", "flax_model.msgpack", "generation_config.json",
)
# Config values KerasHub's GPT2Backbone has fixed: a checkpoint made with
# other values would load without error and compute something else.
FIXED_CONFIG = {
    "activation_function": ("gelu_new", "gelu_pytorch_tanh"),
    "layer_norm_epsilon": (1e-5,),
    "scale_attn_weights": (True,),
    "scale_attn_by_inverse_layer_idx": (False,),
    "add_cross_attention": (False,),
}


def _read_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PresetError(f"Cannot read {path}: {error}.") from None


def looks_like_transformers_folder(path):
    """Whether `path` is (or was meant to be) a transformers checkpoint folder.

    True when its `config.json` is a transformers config (it names a
    `model_type`), or when it has no `config.json` but has transformers
    weight files.

    Example:
    ```python
    from kgpt2.presets.hf_folder import looks_like_transformers_folder

    print(looks_like_transformers_folder("no/such/folder"))  # False
    ```
    """
    path = pathlib.Path(path)
    config = path / CONFIG_FILE
    if config.is_file():
        try:
            content = json.loads(config.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return False
        return isinstance(content, dict) and "model_type" in content
    return path.is_dir() and any((path / name).exists() for name in TRANSFORMERS_FILES)


def read_gpt2_config(folder):
    """Read and check `folder/config.json`; return it as a dict.

    Raises:
        MissingFileError: there is no config.json.
        PresetError: it is not a GPT-2 config KerasHub's `GPT2Backbone`
            computes the same way (the message names the value).

    Example:
    ```python
    from kgpt2.presets.hf_folder import read_gpt2_config

    # read_gpt2_config("path/to/hf/folder")["n_layer"]
    ```
    """
    folder = pathlib.Path(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise MissingFileError(
            f"'{folder}' has transformers files but no {CONFIG_FILE}: save the "
            "model with `model.save_pretrained(folder)`, which writes both."
        )
    config = _read_json(path)
    if not isinstance(config, dict):
        raise PresetError(f"{path} holds a JSON {type(config).__name__}, not an object.")
    model_type = config.get("model_type")
    if model_type != "gpt2":
        architectures = ", ".join(config.get("architectures") or []) or "unnamed"
        raise PresetError(
            f"'{folder}' holds a {model_type!r} model ({architectures}), not "
            "GPT-2: kgpt2 loads transformers folders with model_type 'gpt2' only."
        )
    missing = [key for key in ("vocab_size", "n_embd", "n_layer", "n_head", "n_positions")
               if not isinstance(config.get(key), int)]
    if missing:
        raise PresetError(f"{path} lacks integer {', '.join(missing)}.")
    for key, allowed in FIXED_CONFIG.items():
        if key in config and config[key] not in allowed:
            raise PresetError(
                f"{path} sets {key}={config[key]!r}; KerasHub's GPT-2 computes "
                f"with {key}={allowed[0]!r} only, so this checkpoint would give "
                "different outputs."
            )
    return config


class TensorFiles:
    """The tensors of a transformers checkpoint, read by name on demand.

    Names are taken with or without the `transformer.` prefix that
    `GPT2LMHeadModel` adds. `port_weight` is the interface KerasHub's
    converters call.
    """

    def __init__(self, folder):
        self.folder = pathlib.Path(folder)
        self.shards = self._shards()
        self._opened = {}

    @classmethod
    def from_arrays(cls, arrays):
        """Serve `{name: numpy array}` held in memory, under the same names."""
        tensors = cls.__new__(cls)
        tensors.folder = pathlib.Path("<memory>")
        tensors.shards = {None: "<memory>"}
        tensors._opened = {"<memory>": {_short(name): value for name, value in arrays.items()}}
        return tensors

    def _shards(self):
        folder = self.folder
        for index_name, single in ((SAFETENSORS_INDEX, SAFETENSORS_FILE), (PYTORCH_INDEX, PYTORCH_FILE)):
            if (folder / index_name).is_file():
                weight_map = _read_json(folder / index_name).get("weight_map")
                if not isinstance(weight_map, dict):
                    raise PresetError(f"{folder / index_name} has no weight_map.")
                missing = sorted({name for name in weight_map.values() if not (folder / name).is_file()})
                if missing:
                    raise MissingFileError(
                        f"'{folder}' lacks {', '.join(missing)}, listed in {index_name}."
                    )
                return {_short(key): name for key, name in weight_map.items()}
            if (folder / single).is_file():
                return {None: single}
        others = [name for name in ("tf_model.h5", "flax_model.msgpack") if (folder / name).exists()]
        found = f" ({', '.join(others)} is not read: save with PyTorch weights)" if others else ""
        raise MissingFileError(
            f"'{folder}' has no model weights{found}: expected {SAFETENSORS_FILE} "
            f"(or {SAFETENSORS_INDEX} and its shards), or {PYTORCH_FILE}."
        )

    def shapes(self):
        """`{name: shape}` of every tensor, read from the safetensors headers only.

        None for PyTorch files, whose shapes only unpickling tells.
        """
        from safetensors import safe_open

        files = sorted(set(self.shards.values()))
        if not all(name.endswith(".safetensors") for name in files):
            return None
        shapes = {}
        for name in files:
            try:
                with safe_open(str(self.folder / name), framework="numpy") as file:
                    for key in file.keys():  # noqa: SIM118 - safe_open is not iterable
                        shapes[_short(key)] = tuple(file.get_slice(key).get_shape())
            except Exception as error:  # safetensors raises its own error types.
                raise PresetError(
                    f"Cannot read '{self.folder / name}': {type(error).__name__}: {error}"
                ) from error
        return shapes

    def _file(self, name):
        if name not in self._opened:
            path = self.folder / name
            self._opened[name] = _SafetensorsFile(path) if name.endswith(".safetensors") else _read_pytorch(path)
        return self._opened[name]

    def get_tensor(self, name):
        """Return tensor `name` (e.g. `"h.0.attn.c_attn.weight"`) as numpy."""
        name = _short(name)
        file_name = self.shards.get(name, self.shards.get(None))
        tensors = self._file(file_name) if file_name else {}
        if name not in tensors:
            raise PresetError(
                f"'{self.folder / (file_name or SAFETENSORS_FILE)}' has no tensor "
                f"'{name}' (nor 'transformer.{name}'): not a complete GPT-2 checkpoint."
            )
        return tensors[name]

    def port_weight(self, keras_variable, hf_weight_key, hook_fn=None):
        """Assign tensor `hf_weight_key` (through `hook_fn`) to `keras_variable`."""
        import keras

        tensor = self.get_tensor(hf_weight_key)
        if hook_fn:
            tensor = hook_fn(tensor, list(keras_variable.shape))
        if tuple(tensor.shape) != tuple(keras_variable.shape):
            raise PresetError(
                f"Tensor '{hf_weight_key}' in '{self.folder}' has shape "
                f"{tuple(tensor.shape)}, but the config asks for {tuple(keras_variable.shape)}."
            )
        value = tensor.astype(keras_variable.dtype)
        if keras_variable._value is None:
            # Created deferred (see `load_transformers_folder`): this is its
            # first value.
            keras_variable._initialize(keras.ops.convert_to_tensor(value))
            keras_variable._initializer = None
        else:
            keras_variable.assign(value)


def _short(name):
    return name.removeprefix("transformer.")


# KerasHub's GPT2Backbone sizes under the names a transformers config.json gives them.
HF_NAMES = {
    "vocabulary_size": "vocab_size", "num_layers": "n_layer", "num_heads": "n_head",
    "hidden_dim": "n_embd", "intermediate_dim": "n_inner", "max_sequence_length": "n_positions",
    "dropout": "resid_pdrop",
}


def weight_sizes(shapes):
    """The GPT-2 sizes that tensor `shapes` (`{name: shape}`) hold, in KerasHub's names.

    Example:
    ```python
    from kgpt2.presets.hf_folder import weight_sizes

    shapes = {"wte.weight": (50257, 64), "wpe.weight": (1024, 64),
              "h.0.mlp.c_fc.weight": (64, 256), "h.1.mlp.c_fc.weight": (64, 256)}
    print(weight_sizes(shapes)["num_layers"])  # 2
    ```
    """
    sizes = {}
    if len(shapes.get("wte.weight", ())) == 2:
        sizes["vocabulary_size"], sizes["hidden_dim"] = shapes["wte.weight"]
    if len(shapes.get("wpe.weight", ())) == 2:
        sizes["max_sequence_length"] = shapes["wpe.weight"][0]
    layers = {name.split(".")[1] for name in shapes if name.startswith("h.") and name.count(".") > 1}
    sizes["num_layers"] = len(layers)
    if len(shapes.get("h.0.mlp.c_fc.weight", ())) == 2:
        sizes["intermediate_dim"] = shapes["h.0.mlp.c_fc.weight"][1]
    return sizes


class _SafetensorsFile:
    """One safetensors file's tensors, each read from disk when asked for.

    Reading tensor by tensor, as `port_weight` assigns them, keeps at most
    one tensor beside the model's weights: the whole file read at once
    would double the memory a checkpoint takes to load.
    """

    def __init__(self, path):
        self.path = path
        with self._open() as file:
            self._keys = {_short(key): key for key in file.keys()}  # noqa: SIM118

    def _open(self):
        from safetensors import safe_open

        try:
            # The "flax" reader (JAX, always installed with kgpt2) also reads
            # bfloat16, which numpy alone can't.
            return safe_open(str(self.path), framework="flax")
        except Exception as error:  # safetensors raises its own error types.
            raise PresetError(f"Cannot read '{self.path}': {type(error).__name__}: {error}") from error

    def __contains__(self, name):
        return name in self._keys

    def __getitem__(self, name):
        import numpy as np

        with self._open() as file:
            try:
                tensor = file.get_tensor(self._keys[name])
            except Exception as error:  # safetensors raises its own error types.
                raise PresetError(
                    f"Cannot read tensor '{name}' of '{self.path}': {type(error).__name__}: {error}"
                ) from error
        return np.asarray(tensor, dtype=np.float32)


def _read_pytorch(path):
    try:
        import torch
    except ImportError:
        raise PresetError(
            f"'{path}' is a PyTorch pickle, and reading it needs torch, which "
            "kgpt2 does not install. Either `pip install torch`, or convert "
            "the folder once where transformers is installed: "
            "`GPT2LMHeadModel.from_pretrained(folder).save_pretrained(folder)` "
            f"writes {SAFETENSORS_FILE}."
        ) from None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file.
        raise PresetError(f"Cannot read '{path}': {type(error).__name__}: {error}") from error
    return {_short(key): value.float().numpy() for key, value in state.items()}


def read_gpt2_tokenizer_files(folder):
    """Return `(vocabulary dict, merges list)` from a transformers folder.

    Reads `vocab.json` + `merges.txt` when both are there, else the BPE
    model in `tokenizer.json`.

    Raises:
        MissingFileError: neither layout is complete (names what is missing).
        PresetError: the files are not a byte-level BPE with `<|endoftext|>`.

    Example:
    ```python
    from kgpt2.presets.hf_folder import read_gpt2_tokenizer_files
    from kgpt2.presets.tokenizer import tokenizer_asset_dir

    vocabulary, merges = read_gpt2_tokenizer_files(tokenizer_asset_dir())
    print(len(vocabulary), merges[0])  # 50257 Ġ t
    ```
    """
    folder = pathlib.Path(folder)
    vocabulary_file, merges_file = folder / VOCABULARY_FILE, folder / MERGES_FILE
    tokenizer_file = folder / TOKENIZER_JSON
    if vocabulary_file.is_file() and merges_file.is_file():
        vocabulary = _read_json(vocabulary_file)
        merges = read_merges(merges_file)
        check_merges(merges_file, merges)
        source = str(vocabulary_file)
    elif tokenizer_file.is_file():
        content = _read_json(tokenizer_file)
        model = content.get("model") if isinstance(content, dict) else None
        if not isinstance(model, dict) or model.get("type") != "BPE":
            kind = model.get("type") if isinstance(model, dict) else "no"
            raise PresetError(f"{tokenizer_file} holds a {kind} model, not GPT-2's byte-level BPE.")
        vocabulary = model.get("vocab")
        # tokenizers writes merges as "a b" strings (older) or [a, b] pairs.
        merges = [m if isinstance(m, str) else " ".join(map(str, m)) for m in model.get("merges") or []]
        source = str(tokenizer_file)
        check_merges(f"{tokenizer_file} (model.merges)", merges)
    else:
        present = [f.name for f in (vocabulary_file, merges_file) if f.is_file()]
        half = f" (it has only {present[0]})" if present else ""
        raise MissingFileError(
            f"'{folder}' has no tokenizer files{half}: expected {VOCABULARY_FILE} "
            f"and {MERGES_FILE}, or {TOKENIZER_JSON}. Save the tokenizer into "
            "the folder with `tokenizer.save_pretrained(folder)`."
        )
    check_vocabulary(source, vocabulary)
    return vocabulary, merges
