"""`kgpt2 serve` as a real process, driven by the official `openai` client and Chromium.

One server per module (the tiny preset, with a chat template file), shared
by every test; the SIGTERM test runs last and ends it.
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
# A tiny chat template in transformers' Jinja format.
TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | upper }}: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    template = tmp_path_factory.mktemp("chat") / "template.jinja"
    template.write_text(TEMPLATE, encoding="utf-8")
    process = ServerProcess("--preset", MODEL, "--max-batch-size", "2", "--max-queue", "1",
                            "--context-length", "512", "--api-key", KEY,
                            "--chat-template", str(template))
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
    from kgpt2.generation.prompts import tokenize_prompts

    ids = tokenize_prompts(tiny_lm, [prompt], 64)[0]
    return kgpt2.generate(tiny_lm, prompt, sampler="greedy", include_prefix=False,
                          max_length=len(ids) + new_tokens)[0]


def test_models_and_api_key(server, client):
    assert [model.id for model in client.models.list()] == [MODEL]
    status, body = server.request("GET", "/v1/models")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    status, _ = server.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})
    assert status == 401


def test_the_server_process_never_loads_tensorflow(server, client):
    client.completions.create(model=MODEL, prompt="Hi", max_tokens=2)
    with open(f"/proc/{server.process.pid}/maps", encoding="utf-8") as maps:
        libraries = {line.split()[-1] for line in maps if "/" in line}
    assert any("jaxlib" in library for library in libraries)
    assert not any("tensorflow" in library for library in libraries)


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


def _log_likelihoods(lm, ids):
    """Each token's log-probability given the ones before it (a plain forward pass)."""
    import numpy as np
    from keras import ops

    token_ids = np.array([ids], "int32")
    hidden = lm.backbone({"token_ids": token_ids, "padding_mask": np.ones_like(token_ids)})
    logits = np.asarray(ops.convert_to_numpy(
        lm.backbone.token_embedding(hidden, reverse=True)), "float64")[0]
    logits -= logits.max(axis=-1, keepdims=True)
    logprobs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    return [float(logprobs[i - 1, ids[i]]) for i in range(1, len(ids))]


def _token_ids(lm, text):
    return [int(i) for i in lm.preprocessor.tokenizer(text)]


def test_logprobs_sum_to_the_models_likelihood_and_stream_alike(client, tiny_lm):
    prompt = "The quick brown fox"
    answer = client.completions.create(model=MODEL, prompt=prompt, max_tokens=8,
                                       temperature=0, logprobs=3)
    choice = answer.choices[0]
    logprobs = choice.logprobs
    assert len(logprobs.tokens) == answer.usage.completion_tokens == 8
    assert "".join(logprobs.tokens) == choice.text
    assert logprobs.text_offset[0] == 0 and logprobs.text_offset == sorted(logprobs.text_offset)
    # Greedy: each chosen token is its step's most likely one.
    for token, value, top in zip(logprobs.tokens, logprobs.token_logprobs,
                                 logprobs.top_logprobs):
        assert len(top) == 3 and max(top.values()) == pytest.approx(value, abs=1e-5)
        assert top[token] == pytest.approx(value, abs=1e-5)
    ids = [tiny_lm.preprocessor.tokenizer.end_token_id, *_token_ids(tiny_lm, prompt)]
    expected = _log_likelihoods(tiny_lm, ids + _token_ids(tiny_lm, choice.text))[len(ids) - 1:]
    assert sum(logprobs.token_logprobs) == pytest.approx(sum(expected), abs=1e-3)
    chunks = list(client.completions.create(model=MODEL, prompt=prompt, max_tokens=8,
                                            temperature=0, logprobs=3, stream=True))
    streamed = [v for c in chunks if c.choices and c.choices[0].logprobs
                for v in c.choices[0].logprobs.token_logprobs]
    assert streamed == pytest.approx(logprobs.token_logprobs, abs=1e-6)


def test_echo_puts_the_prompt_and_its_logprobs_first(client, tiny_lm):
    prompt = "Hello there"
    answer = client.completions.create(model=MODEL, prompt=prompt, max_tokens=4,
                                       temperature=0, echo=True, logprobs=1)
    plain = client.completions.create(model=MODEL, prompt=prompt, max_tokens=4, temperature=0)
    choice = answer.choices[0]
    assert choice.text == prompt + plain.choices[0].text
    own = _token_ids(tiny_lm, prompt)
    tokens = choice.logprobs.tokens
    assert "".join(tokens) == choice.text and len(tokens) == len(own) + 4
    # The server prepends <|endoftext|>, so even the first prompt token has
    # a log-probability: the one the model gives it after <|endoftext|>.
    end = tiny_lm.preprocessor.tokenizer.end_token_id
    expected = _log_likelihoods(tiny_lm, [end, *own])
    assert choice.logprobs.token_logprobs[:len(own)] == pytest.approx(expected, abs=1e-4)


def test_logit_bias_minus_100_bans_the_greedy_token(client, tiny_lm):
    prompt = "The quick brown fox"
    plain = client.completions.create(model=MODEL, prompt=prompt, max_tokens=6, temperature=0)
    banned = _token_ids(tiny_lm, plain.choices[0].text)[0]
    biased = client.completions.create(model=MODEL, prompt=prompt, max_tokens=6,
                                       temperature=0, logit_bias={str(banned): -100})
    text = biased.choices[0].text
    assert text != plain.choices[0].text and banned not in _token_ids(tiny_lm, text)


def test_penalties_follow_openai_and_match_generate(client, tiny_lm):
    import kgpt2

    prompt = "The quick brown fox"
    plain = client.completions.create(model=MODEL, prompt=prompt, max_tokens=10,
                                      temperature=0).choices[0].text
    penalized = client.completions.create(
        model=MODEL, prompt=prompt, max_tokens=10, temperature=0, frequency_penalty=2.0,
        presence_penalty=0.5).choices[0].text
    assert penalized != plain
    sampler = kgpt2.samplers.get("greedy", frequency_penalty=2.0, presence_penalty=0.5)
    ids = kgpt2.generation.prompts.tokenize_prompt(tiny_lm, prompt)
    expected = kgpt2.generate(tiny_lm, prompt, sampler=sampler, include_prefix=False,
                              max_length=len(ids) + 10)[0]
    assert penalized == expected


@pytest.mark.parametrize("field, value", [("suffix", "and the end."), ("frobnicate", 1)])
def test_suffix_and_unknown_fields_are_400_naming_them(client, field, value):
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model=MODEL, prompt="Hi", max_tokens=4,
                                  extra_body={field: value})
    assert caught.value.body["param"] == field and field in caught.value.body["message"]


def test_chat_renders_the_template_plain_and_streamed(client, tiny_lm):
    import kgpt2

    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello"}]
    answer = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8,
                                            temperature=0, logprobs=True, top_logprobs=2)
    choice = answer.choices[0]
    assert answer.object == "chat.completion" and choice.message.role == "assistant"
    rendered = "SYSTEM: Be brief.\nUSER: Hello\nASSISTANT:"
    ids = kgpt2.generation.prompts.tokenize_prompt(tiny_lm, rendered, prepend_bos=False)
    expected = kgpt2.generate(tiny_lm, rendered, sampler="greedy", include_prefix=False,
                              max_length=len(ids) + 8, prepend_bos=False)[0]
    assert choice.message.content == expected
    assert answer.usage.prompt_tokens == len(ids)
    assert len(choice.logprobs.content) == answer.usage.completion_tokens
    assert all(len(entry.top_logprobs) == 2 for entry in choice.logprobs.content)
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages,
                                                 max_tokens=8, temperature=0, stream=True))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


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
