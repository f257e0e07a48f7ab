"""Hostile inputs at the command line and the server: one clear line, never a traceback.

The second half of the hostile-input list (the first is
test_hostile_inputs.py): what a user types (`kgpt2 ...` run in-process where
the command's logic is the point, a real process where the operating system
is: closed pipes, signals, file permissions) and what a client sends to a
real `kgpt2 serve`. Each case names the expected line or behaviour; none may
end in a traceback, hang past 30 s or change a user's file.
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from serve_helpers import ServerProcess

import kgpt2
from kgpt2.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL = "gpt2_tiny_random"
BOM = "\ufeff"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_cli")
    (root / "notes.txt").write_text("notes\n")
    (root / "latin1.txt").write_bytes("café au lait\n".encode("latin-1"))
    return root


def _files(root):
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


def _run(argv, capsys):
    """`kgpt2 ARGV` in-process: (exit status, stdout, stderr); argparse errors exit 2."""
    try:
        status = main(argv)
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# (id, argv, exit status, words stderr names, words it must not name); {root} is the scratch folder.
CLI_CASES = [
    ("data_given_twice",
     ["finetune", "--preset", MODEL, "--data", "text:{root}/notes.txt", "--data", "text:{root}/missing.txt"],
     2, ["--data", "given twice", "text:{root}/notes.txt"], []),
    ("max_length_zero", ["generate", "--preset", MODEL, "--max-length", "0"],
     1, ["--max-length must be an integer >= 2, got 0"], ["sequence_length"]),
    ("max_length_past_the_model", ["generate", "--preset", MODEL, "--max-length", "100000"],
     1, ["--max-length=100000", "1024", "--max-length <= 1024"], ["sequence_length"]),
    ("serve_context_length_past_the_model", ["serve", "--preset", MODEL, "--context-length", "5000"],
     1, ["--context-length=5000", "--context-length <= 1024"], ["sequence_length"]),
    ("serve_port_out_of_range", ["serve", "--preset", MODEL, "--port", "99999"],
     1, ["--port must be an integer >= 0 and <= 65535, got 99999"], ["OverflowError"]),
    ("serve_host_not_an_address", ["serve", "--preset", MODEL, "--host", "300.1.2.3"],
     1, ["--host", "'300.1.2.3'"], []),
    ("undecodable_text_names_the_flag", ["finetune", "--preset", MODEL, "--data", "text:{root}/latin1.txt"],
     1, ["latin1.txt", "not utf-8 text", "--encoding"], ["pass encoding="]),
    ("unknown_encoding", ["finetune", "--preset", MODEL, "--data", "text:{root}/notes.txt",
                          "--encoding", "no-such-codec"],
     1, ["--encoding", "'no-such-codec'"], []),
]


@pytest.mark.parametrize("argv, status, words, absent", [pytest.param(*case[1:], id=case[0]) for case in CLI_CASES])
def test_cli_refuses_with_one_line(workdir, capsys, argv, status, words, absent):
    before = _files(workdir)
    got, _, err = _run([arg.format(root=workdir) for arg in argv], capsys)
    assert got == status, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1, err
    for word in words:
        assert word.format(root=workdir) in lines[0], err
    for word in absent:
        assert word not in err, err
    assert _files(workdir) == before


def test_port_is_checked_before_the_model_loads():
    from kgpt2.serving import serve

    # A preset that does not exist: the port must be refused first.
    with pytest.raises(kgpt2.Error, match="port must be an integer >= 0 and <= 65535, got 70000"):
        serve("no_such_preset_anywhere", port=70000)


def test_a_port_in_use_is_refused_before_the_model_loads():
    import socket

    from kgpt2.serving import serve

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(kgpt2.Error, match=f"127.0.0.1:{port}.*in use.*port"):
            serve("no_such_preset_anywhere", port=port)


def test_generate_stream_prints_only_the_text_on_stdout(capsys):
    status, out, err = _run(["generate", "--preset", MODEL, "--stream", "--sampler", "greedy",
                             "--max-length", "12", "--prompt", "Hello"], capsys)
    assert status == 0, err
    assert out.startswith("Hello") and "tokens/s" not in out
    assert "tokens/s" in err  # the speed line, where the run without --stream puts it


# --- text files with a byte-order mark -------------------------------------------------


def test_a_utf8_byte_order_mark_is_not_trained_on(tmp_path):
    from kgpt2.data.text_files import read_texts

    path = tmp_path / "lines.txt"
    path.write_text(BOM + "first line\nsecond line\n", encoding="utf-8")
    assert read_texts(path) == ["first line", "second line"]
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text(BOM + "text\nfirst\n", encoding="utf-8")
    assert read_texts(csv_path) == ["first"]


def test_a_jsonl_file_with_a_byte_order_mark_is_read(tmp_path):
    from kgpt2.data.text_files import read_texts

    path = tmp_path / "records.jsonl"
    path.write_text(BOM + '{"text": "a joke"}\n{"text": "another"}\n', encoding="utf-8")
    before = path.read_bytes()
    assert read_texts(path, field="text") == ["a joke", "another"]
    assert path.read_bytes() == before


@pytest.mark.slow  # trains one step
def test_encoding_flag_reads_a_latin1_file(workdir, capsys):
    # --encoding reaches the reader: a latin-1 file with its encoding named
    # trains; one step is enough to show it was read.
    checkpoints = workdir / "runs"
    status, _, err = _run(["finetune", "--preset", MODEL, "--data", f"text:{workdir}/latin1.txt",
                           "--encoding", "latin-1", "--steps", "1", "--batch-size", "1",
                           "--sequence-length", "8", "--checkpoint-dir", str(checkpoints),
                           "--sample-every", "0"], capsys)
    assert status == 0, err
    assert "Traceback" not in err


# --- real processes: a closed pipe, a read-only folder ---------------------------------


def _environment():
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.mark.slow  # A child process that loads the model.
def test_a_closed_stdout_ends_generate_quietly():
    # `kgpt2 generate --stream | head -1`, with the reader gone before the
    # first write, so the write fails every time, not only when it loses a race.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "kgpt2", "generate", "--preset", MODEL, "--stream",
             "--max-length", "16", "--prompt", "Hello"],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300, env=_environment(),
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert "error" not in result.stderr.lower(), result.stderr
    assert result.returncode == 128 + signal.SIGPIPE  # as a coreutils command killed by SIGPIPE


DROP_ROOT_POWERS = """
import ctypes, os, sys
if os.geteuid() == 0 and "DROPPED" not in os.environ:
    # Root writes anywhere: drop the capabilities that bypass file modes.
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        assert libc.prctl(24, capability, 0, 0, 0) == 0, "PR_CAPBSET_DROP failed"
    os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, DROPPED="1"))
from kgpt2.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # A child process that loads the model.
def test_a_read_only_tensorboard_folder_is_refused_before_training():
    # mkdtemp: a folder private to this user, reachable once root's powers are dropped.
    base = pathlib.Path(tempfile.mkdtemp())
    try:
        run = base / "runs" / "run1"
        (run / "tensorboard").mkdir(parents=True)
        (run / ".kgpt2-run").write_text("A kgpt2 fine-tuning run: see LATEST.\n")
        (base / "poems.txt").write_text("a poem\nanother poem\n")
        (base / "script.py").write_text(DROP_ROOT_POWERS)
        os.chmod(run / "tensorboard", 0o555)
        before = sorted(str(p.relative_to(base)) for p in base.rglob("*"))
        result = subprocess.run(
            [sys.executable, str(base / "script.py"), "finetune", "--preset", MODEL,
             "--data", f"text:{base / 'poems.txt'}", "--checkpoint-dir", str(base / "runs"),
             "--run-name", "run1", "--tensorboard", "--steps", "2", "--batch-size", "1",
             "--sequence-length", "8", "--sample-every", "0"],
            capture_output=True, text=True, timeout=300, env=_environment(),
        )
        assert result.returncode == 1, result.stderr[-3000:]
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
        assert len(errors) == 1, result.stderr[-3000:]
        assert str(run / "tensorboard") in errors[0] and "--tensorboard" in errors[0], errors[0]
        assert "Fine-tuning" not in result.stderr  # refused before training started
        assert sorted(str(p.relative_to(base)) for p in base.rglob("*") if ".lock" not in p.name) == before
    finally:
        for folder in [base, *base.rglob("*")]:
            if folder.is_dir():
                os.chmod(folder, 0o755)
        shutil.rmtree(base)


# --- a real server --------------------------------------------------------------------

# `kgpt2 serve`'s defaults: the limit a request meets is theirs.
MAX_BATCH, MAX_QUEUE = 16, 64


@pytest.fixture(scope="module")
def server():
    """`kgpt2 serve` with its default options; the module's last test ends it with SIGTERM."""
    process = ServerProcess("--preset", MODEL)
    yield process
    process.stop()


def _http_client(url):
    """The official client's HTTP client, for what the client cannot send
    (a chunked body) or hides (the raw events of a stream)."""
    import openai

    # trust_env=False: the test suite points proxy variables at a closed port.
    return openai.DefaultHttpxClient(base_url=url, timeout=60, trust_env=False)


@pytest.fixture(scope="module")
def http(server):
    with _http_client(server.url) as client:
        yield client


@pytest.mark.slow
def test_a_request_that_can_never_fit_is_a_400_naming_the_limit(server):
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", timeout=60, max_retries=0,
                           http_client=openai.DefaultHttpxClient(trust_env=False))
    most = MAX_QUEUE + MAX_BATCH
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=MODEL, prompt=["a"] * (most + 1), max_tokens=2)
    error = info.value.body
    assert error["param"] == "prompt"
    assert f"at most {most} prompts" in error["message"] and "--max-queue" in error["message"]
    # What fits on an idle server is served.
    answer = client.completions.create(model=MODEL, prompt=["a"] * most, max_tokens=2, temperature=0)
    assert len(answer.choices) == most


@pytest.mark.slow
def test_a_chunked_body_over_the_limit_is_a_413(http):
    def chunks():  # no Content-Length: sent chunked
        for _ in range(10):
            yield b" " * (1 << 20)

    answer = http.post("/v1/completions", content=chunks(),
                       headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "request_too_large"
    # A chunked body under the limit is read as usual.
    small = json.dumps({"model": MODEL, "prompt": "a", "max_tokens": 2}).encode()
    answer = http.post("/v1/completions", content=iter([small[:10], small[10:]]),
                       headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text


@pytest.mark.slow  # SIGTERM ends the module's server: keep this test last.
def test_sigterm_ends_a_live_stream_with_a_final_event_and_exit_0(server):
    events = []
    request = {"model": MODEL, "prompt": "Hello", "max_tokens": 1000, "stream": True,
               "temperature": 1.0, "seed": 1}
    with _http_client(server.url) as client:
        with client.stream("POST", "/v1/completions", json=request) as answer:
            assert answer.status_code == 200
            lines = answer.iter_lines()
            for line in lines:
                if line.startswith("data: "):
                    events.append(line[len("data: "):])
                    break
            server.process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            events += [line[len("data: "):] for line in lines if line.startswith("data: ")]
    status = server.process.wait(timeout=30)
    assert time.monotonic() - started < 30
    time.sleep(0.5)  # the reader thread's last lines
    stderr = "".join(server.stderr_lines)
    assert status == 0, stderr[-3000:]
    assert "Traceback" not in stderr and "CancelledError" not in stderr, stderr[-3000:]
    assert events[-1] == "[DONE]", events[-3:]
    last = json.loads(events[-2])
    assert last["choices"][0]["finish_reason"] in ("length", "stop"), last
