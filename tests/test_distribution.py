"""Multi-device training on two virtual CPU devices (JAX), in a subprocess."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parent.parent
WORKER = pathlib.Path(__file__).parent / "distribution_worker.py"


def _run(args, env_update):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **env_update)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env,
        cwd=ROOT, timeout=900,
    )


@pytest.fixture(scope="module")
def report():
    # One process for all three modes: JAX fixes the device count at start.
    result = _run([str(WORKER)], {"KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stderr[-3000:]
    line = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.mark.slow
def test_worker_sees_two_devices(report):
    assert report["device_count"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["data_parallel", "model_parallel"])
def test_loss_matches_single_device(report, mode):
    single, distributed = report["single"]["losses"], report[mode]["losses"]
    assert len(single) == len(distributed) >= 3
    assert single[-1] < single[0]  # it trains
    assert distributed == pytest.approx(single, rel=1e-4, abs=1e-5)
    assert report[mode]["max_weight_difference_from_single"] < 1e-4
    assert report[mode]["weights_changed"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["data_parallel", "model_parallel"])
def test_finetune_distribution_matches_single_device(report, mode):
    single, distributed = report["finetune_single"], report[f"finetune_{mode}"]
    assert single["step"] == distributed["step"] == len(distributed["losses"]) >= 3
    assert single["losses"][-1] < single["losses"][0]
    assert distributed["losses"] == pytest.approx(single["losses"], rel=1e-4, abs=1e-5)
    assert distributed["max_weight_difference_from_single"] < 1e-4
    # The trained weights come back to the caller's model, and are the run's.
    assert distributed["caller_has_the_saved_weights"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["single", "data_parallel", "model_parallel"])
def test_finetune_samples_at_its_last_step_by_default_on_every_layout(report, mode):
    # A sample is a batch of one prompt, fewer rows than data_parallel's devices.
    samples = report[f"finetune_{mode}"]["samples"]
    assert samples.startswith("======== step 4 ========\n") and samples.count("======== step") == 1


@pytest.mark.slow
def test_the_finetune_command_with_its_defaults_trains_and_samples_on_two_devices(report):
    command = report["command_data_parallel"]
    assert command["status"] == 0
    assert command["samples"].startswith("======== step 4 ========\n")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["data_parallel", "model_parallel"])
def test_prepare_keeps_the_weights_and_saving_gathers_them(report, mode):
    assert report[mode]["weights_preserved"]
    assert report[mode]["save_load_round_trip"]


@pytest.mark.slow
def test_prepare_keeps_lora_and_dropout_seed_state(fresh_tiny_lm):
    import keras
    import numpy as np

    from kgpt2.training.distribution import prepare

    fresh_tiny_lm.backbone.enable_lora(2)
    distribution = keras.distribution.DataParallel(devices=keras.distribution.list_devices()[:1])
    rebuilt = prepare(fresh_tiny_lm, distribution)
    old, new = fresh_tiny_lm.backbone, rebuilt.backbone
    assert [v.path for v in new.trainable_weights] == [v.path for v in old.trainable_weights]
    assert any("lora_kernel_a" in v.path for v in new.trainable_weights)
    assert len(new.variables) > len(new.weights)  # seed states are variables too
    for a, b in zip(old.variables, new.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert rebuilt.preprocessor is fresh_tiny_lm.preprocessor


@pytest.mark.slow
def test_data_parallel_replicates_weights_on_both_devices(report):
    layouts = report["data_parallel"]["layouts"].values()
    assert all(layout["devices"] == 2 and layout["replicated"] for layout in layouts)


@pytest.mark.slow
def test_model_parallel_shards_weights_across_two_devices(report):
    layouts = report["model_parallel"]["layouts"]
    ffn = layouts["transformer_layer_0/feedforward_intermediate_dense/kernel"]
    assert ffn["devices"] == 2 and not ffn["replicated"]
    assert ffn["shard_shape"] == [64, 128]  # (hidden, inner=256) split by 2
    query = layouts["transformer_layer_1/self_attention/query/kernel"]
    assert query["shard_shape"] == [64, 1, 32]  # one of the two heads each
    embedding = layouts["token_embedding/embeddings"]
    assert embedding["shard_shape"] == [50257, 32]
    assert layouts["layer_norm/gamma"]["replicated"]


@pytest.mark.slow
@pytest.mark.parametrize("mode, shard_shape", [("data_parallel", [50257, 64]),
                                               ("model_parallel", [50257, 32])])
def test_a_model_created_laid_out_holds_the_weights_of_a_whole_load(report, mode, shard_shape):
    created = report["created_" + mode]
    assert created["equal"]  # bit for bit: each device drew its block with Keras's own draw
    assert created["embedding_shard_shape"] == shard_shape


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["data_parallel", "model_parallel"])
def test_plan_matches_bytes_held_by_device_0(report, mode):
    import kgpt2

    estimate = kgpt2.plan("gpt2_tiny_random", batch_size=4, sequence_length=32,
                          devices=2, distribution=mode)
    assert estimate.parameter_bytes == report[mode]["device0_weight_bytes"]
    assert estimate.optimizer_bytes == report[mode]["device0_adam_bytes"]


@pytest.mark.tensorflow_only  # run by test_tensorflow_backend.py, in its TensorFlow process
def test_tensorflow_backend_gets_a_clear_error():
    import keras

    from kgpt2.presets.gpt2_layout import get_distribution

    assert keras.config.backend() == "tensorflow"
    with pytest.raises(ValueError, match="needs the JAX backend.*KERAS_BACKEND=jax"):
        get_distribution("data_parallel", {})
