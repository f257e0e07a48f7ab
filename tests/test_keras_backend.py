"""Which Keras backend kgpt2 trains on when the user has not chosen one."""

from kgpt2.keras_backend import has_accelerator
from kgpt2.keras_backend import training_backend


def test_without_a_choice_a_cpu_only_machine_trains_on_tensorflow():
    backend, reason = training_backend(user_backend=None, accelerator=False)
    assert backend == "tensorflow" and "KERAS_BACKEND" in reason


def test_the_users_keras_backend_wins():
    for user in ("jax", "tensorflow", "torch"):
        assert training_backend(user_backend=user, accelerator=False) == (user, f"KERAS_BACKEND={user}")
        assert training_backend(user_backend=user, distributed=True)[0] == user


def test_accelerators_and_distributions_keep_jax():
    assert training_backend(user_backend=None, accelerator=True)[0] == "jax"
    assert training_backend(user_backend=None, distributed=True, accelerator=False)[0] == "jax"


def test_accelerators_are_seen_through_their_device_files(tmp_path):
    (tmp_path / "nvidia0").touch()
    assert has_accelerator(patterns=(str(tmp_path / "nvidia[0-9]*"),))
    assert not has_accelerator(patterns=(str(tmp_path / "accel[0-9]*"),))
