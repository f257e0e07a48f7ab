"""Which Keras backend kgpt2 trains on when the user has not chosen one."""

from kgpt2.keras_backend import cpu_bfloat16_instructions
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


def test_mixed_precision_on_a_cpu_with_bfloat16_instructions_trains_on_jax():
    cpu = dict(user_backend=None, accelerator=False, mixed_precision=True)
    backend, reason = training_backend(**cpu, bfloat16_instructions=("avx512_bf16", "amx_bf16"))
    assert backend == "jax" and "avx512_bf16/amx_bf16" in reason and "KERAS_BACKEND" in reason
    assert training_backend(**cpu, bfloat16_instructions=())[0] == "tensorflow"
    assert training_backend(user_backend="tensorflow", accelerator=False, mixed_precision=True,
                            bfloat16_instructions=("amx_bf16",))[0] == "tensorflow"


def test_bfloat16_instructions_are_read_from_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16 avx512_bf16 amx_tile\n"
                       "processor\t: 1\nflags\t\t: fpu avx2 amx_bf16 avx512_bf16 amx_tile\n")
    assert cpu_bfloat16_instructions(str(cpuinfo)) == ("avx512_bf16", "amx_bf16")
    cpuinfo.write_text("flags\t\t: fpu avx2 fma avx512f\n")
    assert cpu_bfloat16_instructions(str(cpuinfo)) == ()
    assert cpu_bfloat16_instructions(str(tmp_path / "missing")) == ()
