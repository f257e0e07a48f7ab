"""Hostile inputs: each ends in a clear `kgpt2.Error` naming the value or file.

The growing list. Add a row to `API_CASES` (Python API) or `CLI_CASES`
(`kgpt2 ...` run in-process) for every new hostile input; a case passes when
the error is a `kgpt2.Error` (and the built-in class callers already catch),
its message names what was wrong, and, on the command line, the exit status
is 1 with one message and no traceback. Files the user had stay intact.
"""

import errno
import json
import os
import pathlib
import re
import shutil
import stat
import subprocess
import sys
import time

import pytest

import kgpt2
from kgpt2.cli import main
from kgpt2.data import DataError
from kgpt2.errors import InputError
from kgpt2.errors import WriteError
from kgpt2.generation.samples_file import SamplesNotWrittenError
from kgpt2.presets import PresetError
from kgpt2.training.compiling import set_precision

VOCABULARY = 50257
INF = float("inf")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A scratch folder with a saved tiny preset and broken copies of it."""
    root = tmp_path_factory.mktemp("hostile")
    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    good = kgpt2.save(lm, root / "preset")

    def broken(name, change):
        folder = root / name
        shutil.copytree(good, folder)
        change(folder)
        return folder

    def config_with(**values):
        def change(folder):
            config = json.loads((folder / "config.json").read_text())
            config["config"].update(values)
            (folder / "config.json").write_text(json.dumps(config))
        return change

    broken("config_list", lambda f: (f / "config.json").write_text("[1, 2, 3]"))
    broken("config_length_text", config_with(max_sequence_length="many"))
    broken("config_length_float", config_with(max_sequence_length=12.5))
    broken("no_weights", lambda f: (f / "model.weights.h5").unlink())
    (root / "a_file").write_text("user data\n")
    (root / "existing.txt").write_text("keep me\n")
    (root / "notes.txt").write_text("notes\n")
    return root


def _generate(**kwargs):
    def call(lm, root):
        return kgpt2.generate(lm, **{"max_length": 12, "sampler": "greedy", **kwargs})
    return call


def _save_under_file(lm, root):
    return kgpt2.save(lm, root / "a_file" / "preset")


# (id, call(tiny_lm, workdir), the built-in base callers catch, words the message names)
API_CASES = [
    ("prompt_int", _generate(prompt_or_prompts=5), ValueError, ["int: 5"]),
    ("prompt_bytes", _generate(prompt_or_prompts=b"hi"), ValueError, ["bytes", "decode"]),
    ("prompt_dict", _generate(prompt_or_prompts={"a": 1}), ValueError, ["dict"]),
    ("prompt_in_list_none", _generate(prompt_or_prompts=["ok", None]), ValueError, ["prompt 1", "NoneType"]),
    ("prompt_lone_surrogate", _generate(prompt_or_prompts="caf\udce9 au lait"), ValueError,
     ["prompt 0", "character 3", "\\udce9", "surrogate"]),
    ("prompt_undecodable_file",
     lambda lm, root: kgpt2.generate(
         lm, (root / "latin1.txt").read_bytes().decode("utf-8", "surrogateescape"), max_length=12),
     ValueError, ["not valid text", "encoding"]),
    ("seed_negative", _generate(seed=-5), ValueError, ["seed", "-5"]),
    ("seed_float", _generate(seed=1.5), ValueError, ["seed", "1.5"]),
    ("stop_id_beyond_vocabulary", _generate(stop_token_ids=[10**9]), ValueError,
     ["stop_token_ids", "1000000000", str(VOCABULARY - 1)]),
    ("stop_id_negative", _generate(stop_token_ids=[-1]), ValueError, ["stop_token_ids", "-1"]),
    ("stop_id_past_int32", _generate(stop_token_ids=10**12), ValueError, ["1000000000000"]),
    ("stop_id_text", _generate(stop_token_ids=["<|endoftext|>"]), ValueError, ["'<|endoftext|>'"]),
    ("token_ids_beyond_vocabulary",
     lambda lm, root: kgpt2.generation.generate_token_ids(lm, [[1, VOCABULARY]], 8),
     ValueError, ["token_ids", str(VOCABULARY)]),
    ("temperature_inf", lambda lm, root: kgpt2.samplers.get("top_k", temperature=INF),
     ValueError, ["temperature", "inf"]),
    ("temperature_nan_object", lambda lm, root: kgpt2.samplers.TopPSampler(temperature=float("nan")),
     ValueError, ["temperature", "nan"]),
    ("temperature_inf_generate",
     lambda lm, root: kgpt2.generate(lm, "a", sampler=kgpt2.samplers.RandomSampler(temperature=INF)),
     ValueError, ["temperature", "inf"]),
    ("top_k_beyond_vocabulary", _generate(sampler=kgpt2.samplers.get("top_k", k=10**9)), ValueError,
     ["k=1000000000", "vocabulary", str(VOCABULARY)]),
    ("top_p_k_beyond_vocabulary", _generate(sampler=kgpt2.samplers.get("top_p", k=10**9)), ValueError,
     ["k=1000000000"]),
    ("contrastive_k_beyond_vocabulary", _generate(sampler=kgpt2.samplers.get("contrastive", k=10**9)),
     ValueError, ["k=1000000000"]),
    ("plan_lora_rank_past_hidden",
     lambda lm, root: kgpt2.plan("gpt2_base_random", batch_size=1, sequence_length=128, lora_rank=100000),
     ValueError, ["lora_rank=100000", "768"]),
    ("plan_lora_rank_past_tiny_hidden",
     lambda lm, root: kgpt2.plan("gpt2_tiny_random", batch_size=1, sequence_length=32, lora_rank=65),
     ValueError, ["lora_rank=65", "64"]),
    ("config_json_list", lambda lm, root: kgpt2.load(root / "config_list"), ValueError,
     ["config_list/config.json", "list"]),
    ("config_length_text", lambda lm, root: kgpt2.load(root / "config_length_text"), ValueError,
     ["config.json", "max_sequence_length", "'many'"]),
    ("config_length_float", lambda lm, root: kgpt2.load(root / "config_length_float", sequence_length=8),
     ValueError, ["max_sequence_length", "12.5"]),
    ("weights_deleted", lambda lm, root: kgpt2.load(root / "no_weights"), ValueError,
     ["model.weights.h5", "no_weights"]),
    ("dtype_int8_builtin", lambda lm, root: kgpt2.load("gpt2_tiny_random", dtype="int8"), ValueError,
     ["'int8'", "lm.quantize"]),
    ("dtype_int8_folder", lambda lm, root: kgpt2.load(root / "preset", dtype="int8"), ValueError,
     ["'int8'"]),
    ("dtype_int32", lambda lm, root: kgpt2.load("gpt2_tiny_random", dtype="int32"), ValueError,
     ["'int32'"]),
    ("precision_float64",
     lambda lm, root: set_precision(lm, "float64"),
     ValueError, ["'float64'", "mixed_bfloat16"]),
    ("save_parent_is_a_file", _save_under_file, OSError, ["a_file", "is a file"]),
    ("from_spec_unknown_option",
     lambda lm, root: kgpt2.data.from_spec(f"text:{root / 'notes.txt'}", unknown_option=1),
     ValueError, ["unknown_option", "batch_size"]),
    ("from_spec_tfds_unknown_option",
     lambda lm, root: kgpt2.data.from_spec("tfds:reddit_tifu/short", unknown_option=1),
     ValueError, ["unknown_option", "data_dir"]),
    ("from_texts_unknown_option", lambda lm, root: kgpt2.data.from_texts(["a"], batchsize=2),
     ValueError, ["batchsize"]),
    ("output_existing_file",
     lambda lm, root: kgpt2.generate(lm, "a", max_length=12, destination_path=root / "existing.txt"),
     ValueError, ["existing.txt", "overwrite=True"]),
    ("output_under_a_file",
     lambda lm, root: kgpt2.generate(lm, "a", max_length=12, destination_path=root / "a_file" / "s.txt"),
     OSError, ["a_file", "is a file"]),
    ("output_is_a_folder",
     lambda lm, root: kgpt2.generate(lm, "a", max_length=12, destination_path=root),
     ValueError, ["folder"]),
]


@pytest.mark.parametrize("call, base, words", [pytest.param(*case[1:], id=case[0]) for case in API_CASES])
def test_api_refuses_with_a_clear_error(tiny_lm, workdir, call, base, words):
    (workdir / "latin1.txt").write_bytes("café".encode("latin-1"))
    before = {path: path.read_bytes() for path in workdir.glob("*.txt")}
    with pytest.raises(kgpt2.Error) as info:
        call(tiny_lm, workdir)
    assert isinstance(info.value, base)
    message = str(info.value)
    for word in words:
        assert word in message, message
    assert "\n" not in message
    assert {path: path.read_bytes() for path in workdir.glob("*.txt")} == before


def test_top_k_beyond_vocabulary_fails_in_keras_hub_generate_too(fresh_tiny_lm):
    fresh_tiny_lm.compile(sampler=kgpt2.samplers.TopKSampler(k=10**9))
    with pytest.raises(InputError, match=f"k=1000000000 is more than the model's vocabulary of {VOCABULARY}"):
        fresh_tiny_lm.generate("a", max_length=8)


@pytest.mark.slow
def test_existing_output_is_replaced_only_with_overwrite(tiny_lm, tmp_path):
    path = tmp_path / "samples.txt"
    path.write_text("old\n")
    texts = kgpt2.generate(tiny_lm, "a", sampler="greedy", max_length=12, destination_path=path,
                           overwrite=True)
    assert path.read_text() == "".join(f"{text}\n{'=' * 20}\n" for text in texts)
    assert [p.name for p in tmp_path.iterdir()] == ["samples.txt"]


@pytest.fixture()
def file_size_limit(monkeypatch):
    """Make the disk look full for the writes after `limit()` is called.

    The failure is injected at the operating-system call that commits a
    file's bytes (`os.fsync`), not with `ulimit -f`: a file-size limit in the
    test process would also cut pytest's own output files.
    """

    def full_disk(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    def limit():
        monkeypatch.setattr(os, "fsync", full_disk)

    return limit


def test_samples_survive_a_write_that_fails_after_generating(tiny_lm, tmp_path, file_size_limit):
    kgpt2.generate(tiny_lm, "a", sampler="greedy", max_length=12)  # compiled before the limit
    path = tmp_path / "samples.txt"
    file_size_limit()
    with pytest.raises(SamplesNotWrittenError) as info:
        kgpt2.generate(tiny_lm, "a", sampler="greedy", max_length=12, destination_path=path)
    assert isinstance(info.value, WriteError) and "samples.txt" in str(info.value)
    assert len(info.value.texts) == 1 and info.value.texts[0].startswith("a")
    assert list(tmp_path.iterdir()) == []  # no half-written file, no temporary file


@pytest.mark.parametrize("writer", ["generate", "bench_json", "bench_plot"])
def test_outputs_get_the_umask_permissions(tiny_lm, tmp_path, writer):
    from kgpt2.bench.plot import plot_report
    from kgpt2.bench.report import BenchReport
    from kgpt2.bench.report import write_json

    report = BenchReport(
        settings={"preset": "gpt2_tiny_random", "prompt_length": 4, "new_tokens": 4},
        machine={"cpu": "cpu", "usable_cores": 2},
        backends={},
        results=[],
        summary=[{"what": "generate", "batch": 1, "sampler": "greedy", "backend": "jax",
                  "impl": "kgpt2", "steady_tok_per_s": 10.0}],
    )
    path = tmp_path / "out"
    old_mask = os.umask(0o022)
    try:
        if writer == "generate":
            kgpt2.generate(tiny_lm, "a", sampler="greedy", max_length=12, destination_path=path)
        elif writer == "bench_json":
            write_json(report, path)
        else:
            plot_report(report, path)
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_offline_tfds_fails_fast_and_leaves_nothing(tmp_path):
    data_dir = tmp_path / "tensorflow_datasets"
    data_dir.mkdir()
    start = time.monotonic()
    with pytest.raises(DataError, match="reddit_tifu.*network is unreachable"):
        kgpt2.data.from_spec("tfds:reddit_tifu/short", data_dir=str(data_dir))
    # Without the probe TFDS retries for about 205 s; generous bound.
    assert time.monotonic() - start < 15
    assert list(data_dir.rglob("*")) == []


@pytest.mark.parametrize("offline_variable", [None, "HF_HUB_OFFLINE", "KGPT2_OFFLINE"])
def test_offline_hf_handle_fails_fast(monkeypatch, offline_variable):
    if offline_variable:
        monkeypatch.setenv(offline_variable, "1")
    start = time.monotonic()
    with pytest.raises(PresetError, match="hf://nobody/no_such_gpt2.*(unreachable|offline)"):
        kgpt2.load("hf://nobody/no_such_gpt2")
    # Without the probe huggingface_hub retries for about 23 s; generous bound.
    assert time.monotonic() - start < 15


# (id, argv after `kgpt2`, words stderr names); {root} is the scratch folder.
CLI_CASES = [
    ("seed_negative", ["generate", "--preset", "gpt2_tiny_random", "--seed", "-5"], ["seed", "-5"]),
    ("temperature_inf", ["generate", "--preset", "gpt2_tiny_random", "--temperature", "inf"],
     ["temperature", "inf"]),
    ("top_k_beyond_vocabulary", ["generate", "--preset", "gpt2_tiny_random", "--top-k", "1000000000"],
     ["k=1000000000", "vocabulary", str(VOCABULARY)]),
    ("prompt_lone_surrogate", ["generate", "--preset", "gpt2_tiny_random", "--prompt", "caf\udce9"],
     ["surrogate"]),
    ("output_existing", ["generate", "--preset", "gpt2_tiny_random", "--output", "{root}/existing.txt"],
     ["existing.txt", "--overwrite"]),
    ("output_under_a_file", ["generate", "--preset", "gpt2_tiny_random", "--output", "{root}/a_file/s.txt"],
     ["a_file", "is a file"]),
    ("preset_config_list", ["generate", "--preset", "{root}/config_list"], ["config.json", "list"]),
    ("preset_weights_deleted", ["generate", "--preset", "{root}/no_weights"], ["model.weights.h5"]),
    ("plan_lora_rank", ["plan", "--preset", "gpt2_base_random", "--batch-size", "1", "--sequence-length", "128",
              "--lora-rank", "100000"],
     ["lora_rank=100000", "768"]),
]


@pytest.mark.parametrize("argv, words", [pytest.param(*case[1:], id=case[0]) for case in CLI_CASES])
def test_cli_prints_one_line_and_exits_1(workdir, capsys, argv, words):
    before = {path: path.read_bytes() for path in workdir.glob("*.txt")}
    status = main([arg.format(root=workdir) for arg in argv])
    captured = capsys.readouterr()
    assert status == 1, captured
    assert "Traceback" not in captured.err
    for word in words:
        assert word in captured.err, captured.err
    assert {path: path.read_bytes() for path in workdir.glob("*.txt")} == before


@pytest.mark.slow  # Loads and compiles the model twice.
def test_cli_prints_the_samples_when_the_output_write_fails(tmp_path, capsys, file_size_limit):
    assert main(["generate", "--preset", "gpt2_tiny_random", "--max-length", "12",
                 "--sampler", "greedy"]) == 0  # compiled before the limit
    capsys.readouterr()
    file_size_limit()
    status = main(["generate", "--preset", "gpt2_tiny_random", "--max-length", "12",
                   "--sampler", "greedy", "--output", str(tmp_path / "samples.txt")])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.out.count("=" * 20) == 1  # the sample, printed
    assert "samples.txt" in captured.err and "printed above" in captured.err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_prompt_of_invalid_utf8_bytes_is_a_clear_error():
    # A real process: only one decodes argv bytes that are not UTF-8.
    result = subprocess.run(
        [sys.executable, "-m", "kgpt2", "generate", "--preset", "gpt2_tiny_random",
         "--prompt", b"caf\xe9"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(r"prompt 0 is not valid text: character 3", result.stderr)


def test_no_purposeful_error_uses_a_bare_builtin_class():
    """Every `raise ValueError(...)`-style error in kgpt2 is a kgpt2.Error."""
    # Modules whose owners are rewriting them; this list only shrinks.
    pending = {"training/finetune.py", "training/compiling.py", "training/checkpoints.py", "training/runs.py"}
    root = pathlib.Path(kgpt2.__file__).parent
    offenders = [
        f"{path.relative_to(root)}:{number}"
        for path in root.rglob("*.py")
        if str(path.relative_to(root)) not in pending
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if re.search(r"raise (ValueError|FileNotFoundError|TypeError|OSError)\(", line)
    ]
    assert offenders == []
