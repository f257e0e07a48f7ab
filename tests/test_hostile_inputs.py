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

    def broken(name, change, source=good):
        folder = root / name
        shutil.copytree(source, folder)
        change(folder)
        return folder

    def config_with(**values):
        def change(folder):
            config = json.loads((folder / "config.json").read_text())
            config["config"].update(values)
            (folder / "config.json").write_text(json.dumps(config))
        return change

    def sizes_with(**values):
        # KerasHub builds the backbone from task.json when there is one, so
        # a hostile size goes into both files.
        def change(folder):
            config_with(**values)(folder)
            task = json.loads((folder / "task.json").read_text())
            task["config"]["backbone"]["config"].update(values)
            (folder / "task.json").write_text(json.dumps(task))
        return change

    def hf_config_with(**values):
        def change(folder):
            config = json.loads((folder / "config.json").read_text())
            config.update(values)
            (folder / "config.json").write_text(json.dumps(config))
        return change

    def task_class(field, name):
        def change(folder):
            task = json.loads((folder / "task.json").read_text())
            task["config"][field].update(class_name=name, registered_name=None)
            (folder / "task.json").write_text(json.dumps(task))
        return change

    broken("config_list", lambda f: (f / "config.json").write_text("[1, 2, 3]"))
    broken("layers_100000", sizes_with(num_layers=100000))
    broken("layers_3", sizes_with(num_layers=3))
    broken("hidden_10000000", sizes_with(hidden_dim=10000000))
    broken("vocabulary_10e10", sizes_with(vocabulary_size=10**10))
    broken("dtype_evil", config_with(dtype="evil"))
    broken("class_evil", lambda f: (f / "config.json").write_text(
        (f / "config.json").read_text().replace('"GPT2Backbone"', '"EvilBackbone"')))
    broken("task_class_os_system", task_class("preprocessor", "os.system"))
    broken("merges_empty", lambda f: (f / "assets" / "tokenizer" / "merges.txt").write_text(""))
    broken("vocabulary_not_json",
           lambda f: (f / "assets" / "tokenizer" / "vocabulary.json").write_text("{not json"))
    hf = kgpt2.export(lm, root / "hf", format="transformers")
    broken("hf_merges_empty", lambda f: (f / "merges.txt").write_text(""), hf)
    broken("hf_layers_100000", hf_config_with(n_layer=100000), hf)
    broken("hf_layers_3", hf_config_with(n_layer=3), hf)
    broken("hf_embd_10000000", hf_config_with(n_embd=10000000), hf)
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
    ("config_num_layers_100000", lambda lm, root: kgpt2.load(root / "layers_100000"), ValueError,
     ["layers_100000/config.json", "num_layers=100000"]),
    ("config_num_layers_past_weights", lambda lm, root: kgpt2.load(root / "layers_3"), ValueError,
     ["config.json: config.num_layers=3 does not match", "model.weights.h5, which hold num_layers=2"]),
    ("config_hidden_dim_10000000", lambda lm, root: kgpt2.load(root / "hidden_10000000"), ValueError,
     ["config.json", "hidden_dim=10000000", "TiB of memory", "this machine's"]),
    ("config_vocabulary_size_10e10", lambda lm, root: kgpt2.load(root / "vocabulary_10e10"), ValueError,
     ["config.json", "vocabulary_size=10000000000", "int32"]),
    ("config_dtype_evil", lambda lm, root: kgpt2.load(root / "dtype_evil"), ValueError,
     ["dtype_evil/config.json", "config.dtype", "'evil'", "float32"]),
    ("config_unknown_class", lambda lm, root: kgpt2.load(root / "class_evil"), ValueError,
     ["class_evil/config.json", "class_name 'EvilBackbone'", "GPT2Backbone"]),
    ("task_unknown_class", lambda lm, root: kgpt2.load(root / "task_class_os_system"), ValueError,
     ["task.json", "config.preprocessor.class_name 'os.system'"]),
    ("merges_empty", lambda lm, root: kgpt2.load(root / "merges_empty"), ValueError,
     ["merges_empty/assets/tokenizer/merges.txt", "no merges"]),
    ("vocabulary_not_json", lambda lm, root: kgpt2.load(root / "vocabulary_not_json"), ValueError,
     ["vocabulary_not_json/assets/tokenizer/vocabulary.json", "not valid JSON"]),
    ("hf_merges_empty", lambda lm, root: kgpt2.load(root / "hf_merges_empty"), ValueError,
     ["hf_merges_empty/merges.txt", "no merges"]),
    ("hf_n_layer_100000", lambda lm, root: kgpt2.load(root / "hf_layers_100000"), ValueError,
     ["hf_layers_100000/config.json", "n_layer=100000"]),
    ("hf_n_layer_past_weights", lambda lm, root: kgpt2.load(root / "hf_layers_3"), ValueError,
     ["config.json: n_layer=3 does not match", "model.safetensors, which hold n_layer=2"]),
    ("hf_n_embd_10000000", lambda lm, root: kgpt2.load(root / "hf_embd_10000000"), ValueError,
     ["config.json", "n_embd=10000000", "TiB of memory"]),
    # 10**6 rows (about 870 GiB) fit on no test machine; the 10**5
    # (87 GiB) is refused the same way on this 23 GiB one.
    ("generate_batch_beyond_memory", _generate(batch_size=10**6, nsamples=10**6), ValueError,
     ["batch_size=1000000", "GiB of memory", "this machine's", "Use a batch_size of at most"]),
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


@pytest.mark.slow
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
    ("preset_num_layers_100000", ["generate", "--preset", "{root}/layers_100000"], ["num_layers=100000"]),
    ("preset_merges_empty", ["generate", "--preset", "{root}/merges_empty"], ["merges.txt", "no merges"]),
    ("hf_merges_empty", ["generate", "--preset", "{root}/hf_merges_empty"], ["merges.txt", "no merges"]),
    ("preset_dtype_evil", ["generate", "--preset", "{root}/dtype_evil"], ["config.dtype", "'evil'"]),
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


# --- Replacing a folder kgpt2 wrote deletes only what kgpt2 wrote ---------------


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_save_over_an_earlier_save_keeps_the_files_a_user_added(tiny_lm, tmp_path):
    saved = kgpt2.save(tiny_lm, tmp_path / "savedA")
    (saved / "NOTES.md").write_text("my notes\n")
    (saved / "assets" / "mine.txt").write_text("mine\n")
    before = _files(saved)
    with pytest.raises(kgpt2.Error) as info:
        kgpt2.save(tiny_lm, saved)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "holds 2 file(s) kgpt2 did not write (NOTES.md, assets/mine.txt)" in message, message
    assert "Move those files out" in message and "\n" not in message
    assert _files(saved) == before
    assert [p.name for p in tmp_path.iterdir()] == ["savedA"]  # no staging folder left


def test_a_save_from_before_manifests_is_replaced_only_when_it_holds_nothing_else(tiny_lm, tmp_path):
    saved = kgpt2.save(tiny_lm, tmp_path / "old")
    (saved / ".kgpt2-manifest.json").unlink(missing_ok=True)  # as kgpt2 wrote saves before
    kgpt2.save(tiny_lm, saved)  # only files a save writes: provably kgpt2's
    (saved / ".kgpt2-manifest.json").unlink(missing_ok=True)
    (saved / "assets" / "tokenizer" / "mine.txt").write_text("mine\n")
    before = _files(saved)
    with pytest.raises(kgpt2.Error, match=r"1 file\(s\) kgpt2 did not write \(assets/tokenizer/mine.txt\)"):
        kgpt2.save(tiny_lm, saved)
    assert _files(saved) == before


@pytest.mark.slow  # two exports
def test_an_export_from_before_manifests_is_replaced_in_another_format(tiny_lm, tmp_path):
    # Its kgpt2_export.json lists the top-level files it wrote: those are provably kgpt2's.
    out = kgpt2.export(tiny_lm, tmp_path / "out", format="transformers")
    (out / ".kgpt2-manifest.json").unlink(missing_ok=True)
    kgpt2.export(tiny_lm, out, format="keras", force=True)
    assert (out / "model.weights.h5").is_file() and not (out / "model.safetensors").exists()


def test_export_force_over_its_own_export_keeps_a_file_in_a_subfolder(tiny_lm, tmp_path, capsys):
    out = kgpt2.export(tiny_lm, tmp_path / "out", format="keras")
    (out / "assets" / "tokenizer" / "mine.txt").write_text("mine\n")
    before = _files(out)
    status = main(["export", "gpt2_tiny_random", str(out), "--format", "keras", "--force"])
    captured = capsys.readouterr()
    assert status == 1, captured
    assert "Traceback" not in captured.err
    assert "(assets/tokenizer/mine.txt)" in captured.err and "Move those files out" in captured.err
    assert _files(out) == before


@pytest.mark.slow  # a child process
def test_staging_left_by_a_killed_export_is_removed_by_the_next_one(tiny_lm, tmp_path):
    import signal
    import socket

    target = tmp_path / "out"
    killed_mid_write = (
        "import os, signal, sys\n"
        "from kgpt2.atomic import writing_folder\n"
        "with writing_folder(sys.argv[1]) as staging:\n"
        "    (staging / 'model.weights.h5').write_bytes(bytes(2**20))\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", killed_mid_write, str(target)], check=False, timeout=120)
    assert result.returncode == -signal.SIGKILL
    [left] = tmp_path.iterdir()
    assert left.name.startswith(".out.")
    # Not provably a dead kgpt2 process's: a user's folder, and a live writer's.
    (tmp_path / ".out.mine").mkdir()
    (tmp_path / ".out.mine" / "notes.txt").write_text("mine\n")
    live = tmp_path / ".out.live"
    live.mkdir()
    marker = {"pid": os.getpid(), "host": socket.gethostname(), "target": "out"}
    (live / ".kgpt2-staging.json").write_text(json.dumps(marker))

    kgpt2.export(tiny_lm, target, format="keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.live", ".out.mine", "out"]


class _Unblocking:
    """Open `fifo` for writing whenever a reader waits on it, then close it.

    Code that opens a named pipe blocks until a writer comes; this writer
    comes and leaves at once, so such code reads an empty file instead of
    hanging the test.
    """

    def __init__(self, fifo):
        import threading

        self.fifo, self.stop = fifo, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(0.05):
            try:
                os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader yet
                continue

    def __enter__(self):
        self.thread.start()

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_named_pipe_data_is_refused_without_opening_it(tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with _Unblocking(fifo):
        with pytest.raises(DataError, match=r"'.*fifo' is a named pipe, not a regular file or folder"):
            kgpt2.data.from_spec(f"text:{fifo}")
        status = main(["finetune", "--preset", "gpt2_tiny_random", "--data", f"text:{fifo}",
                       "--steps", "1", "--checkpoint-dir", str(tmp_path / "checkpoint")])
    captured = capsys.readouterr()
    assert status == 1 and "Traceback" not in captured.err
    assert "is a named pipe, not a regular file or folder" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]
