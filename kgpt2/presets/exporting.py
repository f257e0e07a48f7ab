"""`kgpt2.export`: write a GPT-2 for Hugging Face transformers or as a KerasHub preset.

Both formats hold plain float32 weights: LoRA factors are merged into the
kernels (`kernel + A @ B`, as Keras computes them) and half-precision or
mixed-precision models are upcast. The folder is assembled beside its
destination and renamed into place, so an interrupted export leaves nothing
half-written. It lists every file it wrote in the folder's manifest
(`kgpt2.atomic.MANIFEST_FILE`; `kgpt2_export.json` records the format): a
later export with `force=True` replaces a folder only when it holds nothing
else, at any depth.

Example:
```python
import tempfile, kgpt2

lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
folder = kgpt2.export(lm, tempfile.mkdtemp() + "/for_hf", format="transformers")
shown = sorted(p.name for p in folder.iterdir() if p.name[0] != ".")
print(shown[:3])  # ['config.json', 'generation_config.json', 'kgpt2_export.json']
```
"""

import contextlib
import json
import pathlib

from kgpt2.atomic import check_replaceable
from kgpt2.atomic import write_atomically
from kgpt2.atomic import writing_folder
from kgpt2.checks import check_choice
from kgpt2.errors import InputError
from kgpt2.presets.hf_folder import TensorFiles

FORMATS = ("transformers", "keras")
RECORD_FILE = "kgpt2_export.json"
END_OF_TEXT = "<|endoftext|>"


class ExportError(InputError):
    """The export destination can't be used; the message says why and what to do."""


def hf_tensors(lm):
    """Return `lm`'s weights as float32 numpy arrays under transformers' names.

    The names and layouts are `GPT2LMHeadModel`'s (`transformer.h.0.attn.
    c_attn.weight`, ...), from KerasHub's exporter; LoRA is merged and every
    tensor is float32 whatever `lm`'s dtype. The output head is tied to
    `transformer.wte.weight`, so it is not repeated.

    Example:
    ```python
    import kgpt2
    from kgpt2.presets.exporting import hf_tensors

    tensors = hf_tensors(kgpt2.load("gpt2_tiny_random"))
    print(tensors["transformer.wte.weight"].dtype)  # float32
    ```
    """
    import keras
    import numpy as np
    from keras_hub.src.utils.transformers.export.gpt2 import get_gpt2_weights_map

    with _variable_dtype_compute(lm.backbone):
        weights = get_gpt2_weights_map(lm.backbone, include_lm_head=False)
        return {
            name: np.ascontiguousarray(keras.ops.convert_to_numpy(value).astype(np.float32))
            for name, value in weights.items()
        }


@contextlib.contextmanager
def _variable_dtype_compute(backbone):
    """Compute in the variables' dtype inside the block.

    Under a mixed policy, Keras merges a LoRA kernel (`kernel + A @ B`) in
    the half-precision compute dtype; the export wants it in float32.
    """
    layers = list(backbone._flatten_layers(include_self=True))
    policies = [layer.dtype_policy for layer in layers]
    try:
        for layer, policy in zip(layers, policies):
            if policy.compute_dtype != policy.variable_dtype:
                layer.dtype_policy = policy.variable_dtype
        yield
    finally:
        for layer, policy in zip(layers, policies):
            layer.dtype_policy = policy


def hf_config(lm):
    """Return the `config.json` transformers needs for `lm` (a dict).

    KerasHub's GPT-2 config, plus what serving stacks read: the
    architecture (`GPT2LMHeadModel`), float32 dtype and tied embeddings.

    Example:
    ```python
    import kgpt2
    from kgpt2.presets.exporting import hf_config

    print(hf_config(kgpt2.load("gpt2_tiny_random"))["architectures"])  # ['GPT2LMHeadModel']
    ```
    """
    from keras_hub.src.utils.transformers.export.gpt2 import get_gpt2_config

    config = get_gpt2_config(lm.backbone)
    end = lm.preprocessor.tokenizer.token_to_id(END_OF_TEXT) if lm.preprocessor else 50256
    config.update(
        architectures=["GPT2LMHeadModel"],
        bos_token_id=end,
        eos_token_id=end,
        dtype="float32",
        pad_token_id=None,
        tie_word_embeddings=True,
        scale_attn_by_inverse_layer_idx=False,
        reorder_and_upcast_attn=False,
        add_cross_attention=False,
    )
    return dict(sorted(config.items()))


def hf_tokenizer_json(vocabulary, merges):
    """Build transformers' fast-tokenizer file (`tokenizer.json`) for GPT-2's BPE.

    Example:
    ```python
    from kgpt2.presets.exporting import hf_tokenizer_json
    from kgpt2.presets.hf_folder import read_gpt2_tokenizer_files
    from kgpt2.presets.tokenizer import tokenizer_asset_dir

    text = hf_tokenizer_json(*read_gpt2_tokenizer_files(tokenizer_asset_dir()))
    print(len(text) > 1_000_000)  # True
    ```
    """
    import tokenizers

    model = tokenizers.models.BPE(
        vocab=dict(vocabulary),
        merges=[tuple(merge.split(" ")) for merge in merges],
        continuing_subword_prefix="",
        end_of_word_suffix="",
        fuse_unk=False,
    )
    tokenizer = tokenizers.Tokenizer(model)
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tokenizers.decoders.ByteLevel()
    tokenizer.post_processor = tokenizers.processors.ByteLevel(trim_offsets=False)
    tokenizer.add_special_tokens([tokenizers.AddedToken(END_OF_TEXT, special=True, normalized=False)])
    return tokenizer.to_str()


def _transformers_files(lm):
    """Return `{file name: str or bytes}` of a transformers GPT-2 folder."""
    from safetensors.numpy import save as safetensors_bytes

    config = hf_config(lm)
    tokenizer = lm.preprocessor.tokenizer
    vocabulary = dict(tokenizer.vocabulary)
    merges = list(tokenizer.merges)
    end = config["eos_token_id"]
    tokenizer_config = {
        "tokenizer_class": "GPT2Tokenizer",
        "add_prefix_space": False,
        "bos_token": END_OF_TEXT,
        "eos_token": END_OF_TEXT,
        "unk_token": END_OF_TEXT,
        "model_max_length": config["n_positions"],
    }
    return {
        "config.json": json.dumps(config, indent=2) + "\n",
        "generation_config.json": json.dumps({"bos_token_id": end, "eos_token_id": end}, indent=2) + "\n",
        "model.safetensors": safetensors_bytes(hf_tensors(lm), metadata={"format": "pt"}),
        "tokenizer.json": hf_tokenizer_json(vocabulary, merges),
        "tokenizer_config.json": json.dumps(tokenizer_config, indent=2) + "\n",
        "vocab.json": json.dumps(vocabulary, ensure_ascii=False) + "\n",
        "merges.txt": "#version: 0.2\n" + "\n".join(merges) + "\n",
    }


def float32_copy(lm):
    """Return a plain float32 `GPT2CausalLM` with `lm`'s (LoRA-merged) weights.

    Example:
    ```python
    import kgpt2
    from kgpt2.presets.exporting import float32_copy

    lm = kgpt2.load("gpt2_tiny_random", dtype="bfloat16")
    print(float32_copy(lm).backbone.dtype_policy.name)  # float32
    ```
    """
    import keras_hub
    from keras_hub.src.utils.transformers import convert_gpt2

    config = dict(lm.backbone.get_config(), dtype="float32")
    backbone = type(lm.backbone).from_config(config)
    tensors = TensorFiles.from_arrays(hf_tensors(lm))
    convert_gpt2.convert_weights(backbone, tensors, {"n_embd": backbone.hidden_dim})
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=lm.preprocessor)


def check_destination(out_dir, force=False):
    """Raise `ExportError` unless `export` may write `out_dir` (checked before loading a model).

    `out_dir` must be missing or empty, or with `force` a previous kgpt2
    export holding nothing else.

    Example:
    ```python
    import tempfile
    from kgpt2.presets.exporting import check_destination

    check_destination(tempfile.mkdtemp() + "/new")
    ```
    """
    out_dir = pathlib.Path(out_dir).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"'{out_dir}' is a file; export writes a folder. Give a folder path.")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return
    if not force:
        raise ExportError(
            f"'{out_dir}' is not empty. Choose a new or empty folder, or pass "
            "force=True (--force) to replace a previous kgpt2 export there."
        )
    check_replaceable(out_dir, legacy_marker=RECORD_FILE, error=ExportError)


def export(lm, out_dir, format="transformers", force=False):  # noqa: A002 - the CLI's --format
    """Export `lm` with its tokenizer as a folder other tools load.

    Args:
        lm: a `GPT2CausalLM` with its preprocessor (e.g. `kgpt2.load(run_dir)`).
        out_dir: the folder to write; missing or empty, or a previous kgpt2
            export with `force=True`.
        format: `"transformers"`: `config.json`, `model.safetensors`,
            `generation_config.json` and the tokenizer (`tokenizer.json`,
            `vocab.json`, `merges.txt`, `tokenizer_config.json`), which
            `GPT2LMHeadModel.from_pretrained` / `AutoTokenizer.from_pretrained`,
            the Hub, vLLM and TGI load. `"keras"`: a KerasHub preset folder,
            as `kgpt2.save` writes.
        force: replace a previous kgpt2 export in `out_dir`. Even then,
            files kgpt2 did not write are never deleted: a folder holding any,
            at any depth, is refused.

    Returns:
        The folder, as a `pathlib.Path`.

    Raises:
        ExportError: `out_dir` is a file, not empty without `force`, or
            holds files kgpt2 did not write (the message lists them).
        WriteError: writing failed; `out_dir` is as it was.

    Example:
    ```python
    import tempfile, kgpt2

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    folder = kgpt2.export(lm, tempfile.mkdtemp() + "/preset", format="keras")
    print(kgpt2.load(folder).count_params() == lm.count_params())  # True
    ```
    """
    import keras_hub

    check_choice("export", "format", format, FORMATS)
    if not isinstance(lm, keras_hub.models.GPT2CausalLM):
        raise ExportError(f"export takes a GPT2CausalLM (what kgpt2.load returns), got {type(lm).__name__}.")
    if lm.preprocessor is None:
        raise ExportError("lm has no preprocessor: an export includes the tokenizer. Reattach it first.")
    out_dir = pathlib.Path(out_dir).expanduser()
    check_destination(out_dir, force)
    # Exports from before folder manifests carry only RECORD_FILE.
    with writing_folder(out_dir, legacy_marker=RECORD_FILE, error=ExportError) as staging:
        if format == "transformers":
            for name, content in _transformers_files(lm).items():
                write_atomically(staging / name, content)
        else:
            float32_copy(lm).save_to_preset(str(staging))
        written = sorted(p.name for p in staging.iterdir())
        record = {"format": format, "files": written, "kgpt2_version": _version()}
        write_atomically(staging / RECORD_FILE, json.dumps(record, indent=2) + "\n")
    return out_dir


def _version():
    from importlib import metadata

    try:
        return metadata.version("kgpt2")
    except metadata.PackageNotFoundError:
        return None
