"""Hugging Face folders in (`kgpt2.load`) and out (`kgpt2.export`).

The fixture `fixtures/hf_gpt2_tiny/model` was written by transformers itself
(`make_fixture.py` beside it), with the logits and greedy tokens it computed
in `expected.json`: kgpt2 must reproduce them without torch installed.
"""

import json
import pathlib
import shutil
import sys

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file
from safetensors.numpy import save_file

import kgpt2
from kgpt2.errors import MissingFileError
from kgpt2.presets import PresetError
from kgpt2.presets.exporting import RECORD_FILE
from kgpt2.presets.exporting import ExportError

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "hf_gpt2_tiny"
MODEL = FIXTURE / "model"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text("utf-8"))
HF_TENSORS = ("config.json", "model.safetensors")


@pytest.fixture(scope="module")
def hf_lm():
    return kgpt2.load(MODEL)


def logits(lm, ids):
    ids = np.asarray([ids])
    return np.asarray(lm({"token_ids": ids, "padding_mask": np.ones_like(ids)}))[0]


def logsumexp(rows):
    top = rows.max(-1, keepdims=True)
    return (top + np.log(np.exp(rows - top).sum(-1, keepdims=True)))[:, 0]


def folder_with(tmp_path, *names):
    """A copy of the fixture folder holding only `names`."""
    folder = tmp_path / "hf"
    folder.mkdir()
    for name in names:
        shutil.copy(MODEL / name, folder / name)
    return folder


def tensor_shapes(path):
    with safe_open(str(path), framework="numpy") as file:
        return {key: tuple(file.get_slice(key).get_shape()) for key in file.keys()}


@pytest.mark.slow
def test_a_transformers_folder_reproduces_transformers_logits_and_greedy_tokens(hf_lm):
    assert hf_lm.backbone.dtype_policy.name == "float32"
    assert hf_lm.preprocessor.sequence_length == 64  # the model's n_positions
    for case in EXPECTED["prompts"]:
        ids = np.asarray(hf_lm.preprocessor.tokenizer(case["prompt"])).tolist()
        assert ids == case["token_ids"]
        rows = logits(hf_lm, ids)
        np.testing.assert_allclose(rows[:, EXPECTED["sampled_ids"]], case["sampled_logits"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(rows.max(-1), case["row_max"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(logsumexp(rows), case["row_logsumexp"], atol=1e-4, rtol=0)
        new = len(case["greedy_new_tokens"])
        out = kgpt2.generation.generate_token_ids(hf_lm, [ids], len(ids) + new, sampler="greedy")
        assert out[0, len(ids):].tolist() == case["greedy_new_tokens"]


@pytest.mark.slow
def test_a_tokenizer_json_only_folder_loads_the_same_tokenizer(tmp_path, hf_lm):
    import tokenizers

    # transformers 5 saves only tokenizer.json, written by the tokenizers library.
    folder = folder_with(tmp_path, *HF_TENSORS)
    bpe = tokenizers.models.BPE.from_file(str(MODEL / "vocab.json"), str(MODEL / "merges.txt"))
    tokenizer = tokenizers.Tokenizer(bpe)
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.save(str(folder / "tokenizer.json"))
    lm = kgpt2.load(folder, sequence_length=16)
    assert lm.preprocessor.sequence_length == 16
    for case in EXPECTED["prompts"]:
        assert np.asarray(lm.preprocessor.tokenizer(case["prompt"])).tolist() == case["token_ids"]
    np.testing.assert_array_equal(lm.backbone.get_weights()[0], hf_lm.backbone.get_weights()[0])


@pytest.mark.slow
def test_kgpt2_generate_runs_on_a_transformers_folder(capsys):
    from kgpt2.cli import main

    status = main(["generate", "--preset", str(MODEL), "--prompt", "The quick brown fox",
                   "--sampler", "greedy", "--max-length", "12"])
    assert status == 0
    assert capsys.readouterr().out.startswith("The quick brown fox")


@pytest.mark.parametrize(
    "change, error, words",
    [
        (lambda config: config.update(model_type="llama", architectures=["LlamaForCausalLM"]),
         PresetError, ["'llama'", "LlamaForCausalLM", "gpt2"]),
        (lambda config: config.update(activation_function="relu"), PresetError, ["activation_function='relu'"]),
        (lambda config: config.pop("n_layer"), PresetError, ["n_layer"]),
    ],
)
def test_a_folder_that_is_not_a_gpt2_kerashub_computes_is_refused_by_name(tmp_path, change, error, words):
    folder = folder_with(tmp_path, *HF_TENSORS, "vocab.json", "merges.txt")
    config = json.loads((folder / "config.json").read_text("utf-8"))
    change(config)
    (folder / "config.json").write_text(json.dumps(config), "utf-8")
    with pytest.raises(error) as raised:
        kgpt2.load(folder)
    assert isinstance(raised.value, kgpt2.Error)
    for word in words:
        assert word in str(raised.value)


@pytest.mark.parametrize(
    "names, words",
    [
        (["config.json", "vocab.json", "merges.txt"], ["no model weights", "model.safetensors", "pytorch_model.bin"]),
        ([*HF_TENSORS], ["no tokenizer files", "vocab.json", "merges.txt", "tokenizer.json"]),
        ([*HF_TENSORS, "vocab.json"], ["only vocab.json", "merges.txt"]),
        (["model.safetensors", "vocab.json", "merges.txt"], ["no config.json"]),
    ],
)
def test_an_incomplete_folder_names_what_is_missing(tmp_path, names, words):
    folder = folder_with(tmp_path, *names)
    with pytest.raises(MissingFileError) as raised:
        kgpt2.load(folder)
    for word in words:
        assert word in str(raised.value)


@pytest.mark.slow
def test_a_checkpoint_missing_a_tensor_names_it(tmp_path):
    folder = folder_with(tmp_path, "config.json", "vocab.json", "merges.txt")
    tensors = load_file(MODEL / "model.safetensors")
    del tensors["transformer.h.1.mlp.c_fc.bias"]
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(PresetError, match=r"no tensor 'h\.1\.mlp\.c_fc\.bias'"):
        kgpt2.load(folder)


@pytest.mark.slow
def test_pytorch_weights_without_torch_say_how_to_convert(tmp_path, monkeypatch):
    folder = folder_with(tmp_path, "config.json", "vocab.json", "merges.txt")
    (folder / "pytorch_model.bin").write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)  # as where torch is not installed
    with pytest.raises(PresetError) as raised:
        kgpt2.load(folder)
    assert "needs torch" in str(raised.value) and "save_pretrained" in str(raised.value)


@pytest.mark.slow
def test_a_transformers_export_has_what_transformers_wrote_and_loads_back_equal(tmp_path, hf_lm):
    out = kgpt2.export(hf_lm, tmp_path / "export", format="transformers")
    written = {p.name for p in out.iterdir()}
    assert {p.name for p in MODEL.iterdir()} <= written
    assert {"tokenizer.json", RECORD_FILE} <= written
    ours = json.loads((out / "config.json").read_text("utf-8"))
    theirs = json.loads((MODEL / "config.json").read_text("utf-8"))
    assert set(theirs) - {"transformers_version"} <= set(ours)
    for key in ("model_type", "architectures", "vocab_size", "n_embd", "n_layer", "n_head", "n_positions",
                "activation_function", "layer_norm_epsilon", "tie_word_embeddings", "scale_attn_weights",
                "bos_token_id", "eos_token_id"):
        assert ours[key] == theirs[key], key
    assert ours["dtype"] == "float32"
    assert tensor_shapes(out / "model.safetensors") == tensor_shapes(MODEL / "model.safetensors")
    assert json.loads((out / "vocab.json").read_text("utf-8")) == json.loads((MODEL / "vocab.json").read_text("utf-8"))
    assert (out / "merges.txt").read_text("utf-8") == (MODEL / "merges.txt").read_text("utf-8")

    loaded = kgpt2.load(out)
    ids = EXPECTED["prompts"][2]["token_ids"]
    np.testing.assert_array_equal(logits(loaded, ids), logits(hf_lm, ids))

    def tokens(lm):
        return np.asarray(lm.preprocessor.tokenizer("床前")).tolist()

    assert tokens(loaded) == tokens(hf_lm)
    # The tokenizer.json alone gives the same tokenizer.
    (out / "vocab.json").unlink()
    assert np.asarray(kgpt2.load(out).preprocessor.tokenizer(" 疑是地上霜")).tolist() == \
        np.asarray(hf_lm.preprocessor.tokenizer(" 疑是地上霜")).tolist()


@pytest.mark.slow
def test_lora_and_mixed_precision_export_merged_float32_weights(tmp_path, fresh_tiny_lm):
    lm = fresh_tiny_lm
    kgpt2.compile_lm(lm, steps=1, lora_rank=2, mixed_precision=True)
    rng = np.random.default_rng(0)
    for variable in lm.backbone.trainable_variables:
        if "lora_kernel" in variable.path:
            variable.assign(rng.normal(0, 0.5, variable.shape).astype("float32"))
    transformers_dir = kgpt2.export(lm, tmp_path / "hf")
    keras_dir = kgpt2.export(lm, tmp_path / "keras", format="keras")

    shapes = tensor_shapes(transformers_dir / "model.safetensors")
    assert not any("lora" in name for name in shapes)
    with safe_open(str(transformers_dir / "model.safetensors"), framework="numpy") as file:
        assert {file.get_tensor(name).dtype for name in shapes} == {np.dtype("float32")}
    kgpt2.compile_lm(lm, steps=1, lora_rank=2)  # float32 compute, for the reference
    ids = [464, 2068, 7586, 21831]
    reference = logits(lm, ids)
    for folder in (transformers_dir, keras_dir):
        loaded = kgpt2.load(folder)
        assert loaded.backbone.dtype_policy.name == "float32"
        assert not any(getattr(layer, "lora_enabled", False) for layer in loaded.backbone._flatten_layers())
        np.testing.assert_allclose(logits(loaded, ids), reference, atol=1e-5)


def test_export_never_replaces_what_it_did_not_write(tmp_path, tiny_lm):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", "utf-8")
    for force in (False, True):
        with pytest.raises(ExportError, match="not empty"):
            kgpt2.export(tiny_lm, mine, format="keras", force=force)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]

    out = kgpt2.export(tiny_lm, tmp_path / "export", format="keras")
    with pytest.raises(ExportError, match="force=True"):
        kgpt2.export(tiny_lm, out, format="keras")
    kgpt2.export(tiny_lm, out, format="transformers", force=True)  # replaces its own export
    assert json.loads((out / RECORD_FILE).read_text("utf-8"))["format"] == "transformers"
    assert not (out / "model.weights.h5").exists()

    (out / "README.md").write_text("my model card", "utf-8")
    with pytest.raises(ExportError, match="README.md"):
        kgpt2.export(tiny_lm, out, format="keras", force=True)
    assert (out / "README.md").read_text("utf-8") == "my model card"
    assert (out / "config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left

    (tmp_path / "file").write_text("x", "utf-8")
    with pytest.raises(ExportError, match="is a file"):
        kgpt2.export(tiny_lm, tmp_path / "file")
    with pytest.raises(kgpt2.Error, match="format"):
        kgpt2.export(tiny_lm, tmp_path / "new", format="onnx")


@pytest.mark.slow
def test_kgpt2_export_command(tmp_path, capsys):
    from kgpt2.cli import main

    # The default format: a transformers folder, which kgpt2 loads back.
    assert main(["export", "gpt2_tiny_random", str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    assert kgpt2.load(tmp_path / "hf").count_params() == kgpt2.load("gpt2_tiny_random").count_params()
    out = tmp_path / "preset"
    assert main(["export", "gpt2_tiny_random", str(out), "--format", "keras"]) == 0
    assert kgpt2.load(out).count_params() == kgpt2.load("gpt2_tiny_random").count_params()
    assert main(["export", "gpt2_tiny_random", str(out), "--format", "keras"]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["export", "gpt2_tiny_random", str(out), "--format", "keras", "--force"]) == 0


def sharded_folder(tmp_path):
    """The fixture with its weights in two shards and an index, as large models are saved."""
    folder = folder_with(tmp_path, "config.json", "vocab.json", "merges.txt")
    tensors = load_file(MODEL / "model.safetensors")
    names = sorted(tensors)
    weight_map = {}
    for number, part in enumerate((names[:10], names[10:]), 1):
        shard = f"model-0000{number}-of-00002.safetensors"
        save_file({name: tensors[name] for name in part}, folder / shard)
        weight_map.update(dict.fromkeys(part, shard))
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index), "utf-8")
    return folder


@pytest.mark.slow
def test_sharded_safetensors_load_like_one_file(tmp_path, hf_lm):
    lm = kgpt2.load(sharded_folder(tmp_path))
    assert all(np.array_equal(a, b) for a, b in zip(lm.get_weights(), hf_lm.get_weights()))


def test_a_missing_shard_is_named(tmp_path):
    folder = sharded_folder(tmp_path)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(MissingFileError, match="model-00002-of-00002.safetensors"):
        kgpt2.load(folder)
