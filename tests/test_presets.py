import json

import numpy as np
import pytest

import kgpt2
from kgpt2.presets import OFFICIAL_PRESETS
from kgpt2.presets import PresetError


def test_tokenizer_is_real_gpt2(tiny_lm):
    tokenizer = tiny_lm.preprocessor.tokenizer
    assert list(np.asarray(tokenizer("Hello world"))) == [15496, 995]
    assert list(np.asarray(tokenizer(" tokenization"))) == [11241, 1634]
    assert tokenizer.vocabulary_size() == 50257
    assert tokenizer.token_to_id("<|endoftext|>") == 50256


def test_load_returns_causal_lm_with_preprocessor(tiny_lm):
    import keras_hub

    assert isinstance(tiny_lm, keras_hub.models.GPT2CausalLM)
    assert isinstance(tiny_lm.preprocessor, keras_hub.models.GPT2CausalLMPreprocessor)
    assert tiny_lm.preprocessor.sequence_length == 64


@pytest.mark.slow
def test_random_presets_are_seeded():
    a = kgpt2.load("gpt2_tiny_random", seed=3).get_weights()
    b = kgpt2.load("gpt2_tiny_random", seed=3).get_weights()
    c = kgpt2.load("gpt2_tiny_random", seed=4).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.slow
def test_save_load_round_trip(tiny_lm, tmp_path):
    import keras_hub

    folder = kgpt2.save(tiny_lm, tmp_path / "preset")
    for loaded in (
        kgpt2.load(folder),
        keras_hub.models.GPT2CausalLM.from_preset(str(folder)),
    ):
        assert all(
            np.array_equal(x, y)
            for x, y in zip(tiny_lm.get_weights(), loaded.get_weights())
        )
        assert loaded.preprocessor.sequence_length == 64
        assert list(np.asarray(loaded.preprocessor.tokenizer("Hello world"))) == [15496, 995]
    # Saving again over the same folder replaces it and leaves no staging dirs.
    kgpt2.save(tiny_lm, folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preset"]


def test_load_overrides_sequence_length_of_saved_preset(tiny_lm, tmp_path):
    folder = kgpt2.save(tiny_lm, tmp_path / "preset")
    assert kgpt2.load(folder, sequence_length=128).preprocessor.sequence_length == 128


def test_base_random_has_gpt2_base_shape():
    from kgpt2.presets.catalog import backbone_config
    from kgpt2.presets.catalog import count_parameters

    config = backbone_config("gpt2_base_random")
    assert (config["num_layers"], config["num_heads"], config["hidden_dim"]) == (12, 12, 768)
    assert config["intermediate_dim"] == 3072
    assert count_parameters(config) == 124439808


def test_parameter_count_matches_a_built_model(tiny_lm):
    from kgpt2.presets.catalog import backbone_config
    from kgpt2.presets.catalog import count_parameters

    assert count_parameters(backbone_config("gpt2_tiny_random")) == tiny_lm.backbone.count_params()


def test_catalog_matches_keras_hub_metadata():
    import keras_hub

    rows = {name: kgpt2.presets.info(name) for name in kgpt2.presets.names()}
    assert set(rows) == {*OFFICIAL_PRESETS, "gpt2_tiny_random", "gpt2_base_random"}
    for name in OFFICIAL_PRESETS:
        registry = keras_hub.models.GPT2Backbone.presets[name]
        assert rows[name].params == registry["metadata"]["params"], name
        # Kept offline in the catalog: they must still be KerasHub's.
        assert rows[name].description == registry["metadata"]["description"], name
        assert rows[name].source == f"download: {registry['kaggle_handle']}", name
    # Every preset's float32 size follows from its parameter count, built-in ones too.
    assert all(row.float32_mb == round(row.params * 4 / 2**20, 1) for row in rows.values())
    with pytest.raises(kgpt2.Error, match="Unknown preset 'gpt3_huge'.*gpt2_tiny_random"):
        kgpt2.presets.info("gpt3_huge")


@pytest.mark.parametrize("name", sorted(OFFICIAL_PRESETS))
def test_official_presets_fail_offline_with_clear_message(name, tmp_path, monkeypatch):
    # An empty kagglehub cache forces a real download attempt.
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))
    with pytest.raises(PresetError) as info:
        kgpt2.load(name)
    message = str(info.value)
    assert name in message
    assert "kaggle://keras/gpt2/keras/" in message
    assert "gpt2_tiny_random" in message and "gpt2_base_random" in message


@pytest.mark.slow
def test_hf_handle_fails_offline_with_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(PresetError, match="hf://someone/gpt2-thing.*gpt2_tiny_random"):
        kgpt2.load("hf://someone/gpt2-thing")


def test_unknown_name_lists_known_presets():
    with pytest.raises(PresetError, match="Unknown preset 'gpt3_huge'.*gpt2_base_en"):
        kgpt2.load("gpt3_huge")


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(PresetError, match="does not exist"):
        kgpt2.load(str(tmp_path / "nope"))


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(PresetError, match="no config.json"):
        kgpt2.load(str(tmp_path))


@pytest.mark.parametrize("name", ["gpt2_tiny_random", "gpt2_base_en"])
def test_sequence_length_above_1024_refused_before_any_work(name, monkeypatch):
    import keras_hub

    def no_download(*args, **kwargs):
        raise AssertionError("must not start loading")

    monkeypatch.setattr(keras_hub.models.GPT2CausalLM, "from_preset", no_download)
    with pytest.raises(PresetError, match="1025.*1024"):
        kgpt2.load(name, sequence_length=1025)


def test_sequence_length_checked_against_local_preset(tiny_lm, tmp_path):
    folder = kgpt2.save(tiny_lm, tmp_path / "preset")
    config = json.loads((folder / "config.json").read_text())
    config["config"]["max_sequence_length"] = 128
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PresetError, match="129.*128 positions"):
        kgpt2.load(folder, sequence_length=129)


def test_sequence_length_must_be_an_integer():
    with pytest.raises(PresetError, match="integer"):
        kgpt2.load("gpt2_tiny_random", sequence_length="64")


@pytest.mark.slow
def test_random_preset_honours_dtype():
    full = kgpt2.load("gpt2_tiny_random", sequence_length=16, seed=3)
    half = kgpt2.load("gpt2_tiny_random", sequence_length=16, seed=3, dtype="bfloat16")
    assert {w.dtype for w in half.backbone.weights} == {"bfloat16"}
    assert half.backbone.compute_dtype == "bfloat16"
    # Same seed, same model: the bfloat16 weights are the float32 ones rounded.
    for a, b in zip(full.backbone.get_weights(), half.backbone.get_weights()):
        np.testing.assert_allclose(np.asarray(b, "float32"), a, rtol=1e-2, atol=1e-6)


def test_random_preset_refuses_other_options():
    with pytest.raises(PresetError, match="accepts only `dtype`.*load_weights"):
        kgpt2.load("gpt2_tiny_random", load_weights=False)


@pytest.mark.slow
def test_load_and_compile_turn_on_the_compilation_cache(monkeypatch, tmp_path):
    """A second process then reads the weight-drawing and training programs
    from disk instead of compiling them (the folder and JAX's threshold
    are what `kgpt2.compilation_cache` documents)."""
    import jax

    from kgpt2.compilation_cache import MIN_COMPILE_SECONDS

    folder, threshold = jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs
    try:
        for step in ("load", "compile"):
            jax.config.update("jax_compilation_cache_dir", None)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
            monkeypatch.setenv("KGPT2_COMPILATION_CACHE", str(tmp_path / step))
            if step == "load":
                lm = kgpt2.load("gpt2_tiny_random", sequence_length=16)
            else:
                kgpt2.compile(lm, steps=2)
            assert jax.config.jax_compilation_cache_dir == str(tmp_path / step), step
            assert jax.config.jax_persistent_cache_min_compile_time_secs == MIN_COMPILE_SECONDS
    finally:
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", threshold)
