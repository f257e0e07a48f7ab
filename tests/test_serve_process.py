"""`kgpt2 serve` as a real process, driven by the official `openai` client and Chromium.

One server per module (the tiny preset), shared by every test; the SIGTERM
test runs last and ends it.
"""

import http.client
import json
import os
import shutil
import time

import pytest
from serve_helpers import ServerProcess

pytestmark = pytest.mark.slow

MODEL = "gpt2_tiny_random"
KEY = "test-key-123"


@pytest.fixture(scope="module")
def server():
    process = ServerProcess("--preset", MODEL, "--max-batch-size", "2", "--max-queue", "1",
                            "--context-length", "512", "--api-key", KEY)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server):
    import openai

    # trust_env=False: the test suite points proxy variables at a closed port.
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, timeout=120, max_retries=0,
                         http_client=openai.DefaultHttpxClient(trust_env=False))


def _greedy(tiny_lm, prompt, new_tokens):
    import kgpt2

    ids = kgpt2.generation.prompts.tokenize_prompts(tiny_lm, [prompt], 64)[0]
    return kgpt2.generate(tiny_lm, prompt, sampler="greedy", include_prefix=False,
                          max_length=len(ids) + new_tokens)[0]


def test_models_and_api_key(server, client):
    assert [model.id for model in client.models.list()] == [MODEL]
    status, body = server.request("GET", "/v1/models")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    status, _ = server.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})
    assert status == 401


def test_plain_completion_is_greedy_generate(client, tiny_lm):
    answer = client.completions.create(model=MODEL, prompt="The quick brown fox",
                                       max_tokens=12, temperature=0)
    choice = answer.choices[0]
    assert choice.text == _greedy(tiny_lm, "The quick brown fox", 12)
    assert choice.finish_reason in ("length", "stop") and choice.index == 0
    assert answer.usage.prompt_tokens == 5
    assert answer.usage.total_tokens == 5 + answer.usage.completion_tokens


def test_streamed_completion_arrives_in_pieces(client, tiny_lm):
    chunks = list(client.completions.create(model=MODEL, prompt="Hello there", max_tokens=16,
                                            temperature=0, stream=True))
    assert len(chunks) > 2
    assert "".join(c.choices[0].text for c in chunks) == _greedy(tiny_lm, "Hello there", 16)
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")


def test_n_choices_for_a_list_of_prompts(client):
    answer = client.completions.create(model=MODEL, prompt=["One", "Two"], n=2,
                                       max_tokens=6, temperature=0.8, seed=3)
    assert sorted(c.index for c in answer.choices) == [0, 1, 2, 3]
    assert all(c.finish_reason in ("length", "stop") for c in answer.choices)
    assert answer.usage.completion_tokens <= 24


@pytest.mark.parametrize("field, value", [
    ("temperature", -1.0), ("top_p", 1.5), ("n", 9), ("max_tokens", 0),
    ("max_tokens", 600), ("model", "gpt-4"), ("sampler", "beam"),
])
def test_bad_requests_are_400_naming_the_field(client, field, value):
    import openai

    request = {"model": MODEL, "prompt": "Hi", "max_tokens": 4, field: value}
    extra = {key: request.pop(key) for key in ("sampler",) if key in request}
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(**request, extra_body=extra or None)
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == field
    assert field in caught.value.body["message"]


def _open_stream(server, max_tokens):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    body = {"model": MODEL, "prompt": "Long", "max_tokens": max_tokens, "stream": True}
    connection.request("POST", "/v1/completions", body=json.dumps(body),
                       headers={"Content-Type": "application/json",
                                "Authorization": f"Bearer {KEY}"})
    return connection, connection.getresponse()


def test_queue_full_is_429_and_disconnects_free_rows(server):
    streams = []
    try:
        for _ in range(2):
            streams.append(_open_stream(server, 500))
        server.wait_for(lambda s: s["busy_rows"] == 2)
        streams.append(_open_stream(server, 500))  # waits in the queue
        server.wait_for(lambda s: s["waiting"] == 1)
        status, body = server.request(
            "POST", "/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": 4},
            headers={"Authorization": f"Bearer {KEY}"})
        assert status == 429 and body["error"]["type"] == "rate_limit_error"
        assert streams[0][1].status == 200 and streams[0][1].readline().startswith(b"data: ")
    finally:
        for connection, response in streams:
            response.close()
            connection.close()
    stats = server.wait_for(lambda s: s["busy_rows"] == 0 and s["waiting"] == 0, seconds=30)
    assert stats["tokens"] < 3 * 500  # the closed streams stopped decoding


def test_overlapping_requests_share_steps(server, client):
    import concurrent.futures

    before = server.request("GET", "/health")[1]["engine"]["rows_per_step"].get("2", 0)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda p: client.completions.create(
            model=MODEL, prompt=p, max_tokens=200, temperature=0), ["A", "B"]))
    assert all(a.choices[0].text for a in answers)
    after = server.request("GET", "/health")[1]["engine"]["rows_per_step"].get("2", 0)
    assert after > before


# CI installs Chromium (.ci/run), so there the test always runs; elsewhere a
# machine without it is told what to install rather than failing obscurely.
@pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("CI"),
    reason="needs Debian's chromium (apt-get install -y chromium); .ci/run installs it",
)
def test_playground_streams_in_headless_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=shutil.which("chromium"),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        try:
            page = browser.new_page()
            page.goto(server.url + "/", timeout=60_000)
            page.fill("#api_key", KEY)
            page.fill("#max_tokens", "300")
            page.select_option("#sampler", "greedy")
            page.click("#generate")
            page.wait_for_function(
                "document.getElementById('status').textContent.startsWith('Done')",
                timeout=60_000)
            reads = int(page.get_attribute("#output", "data-reads"))
            status = page.text_content("#status")
            completion = page.text_content("#completion")
        finally:
            browser.close()
    assert "tokens/s" in status and " 0 tokens" not in status
    assert reads > 5  # the text arrived in many pieces, not at the end
    # The page shows what a plain request answers, piece by piece.
    plain = server.request(
        "POST", "/v1/completions",
        {"model": MODEL, "prompt": "The quick brown fox", "max_tokens": 300, "temperature": 0},
        headers={"Authorization": f"Bearer {KEY}"})[1]
    assert completion == plain["choices"][0]["text"]


def test_sigterm_exits_cleanly(server):
    connection, response = _open_stream(server, 400)
    assert response.readline().startswith(b"data: ")
    started = time.monotonic()
    assert server.terminate(seconds=60) == 0
    assert time.monotonic() - started < 60
    rest = response.read()  # the stream ended (finished or cut), no hang
    connection.close()
    assert b"Traceback" not in "".join(server.stderr_lines).encode()
    assert rest is not None
