"""The serving app in-process (FastAPI's TestClient): errors, limits, stop sequences."""

import json

import pytest

MODEL = "tiny"


@pytest.fixture(scope="module")
def client(tiny_lm):
    from fastapi.testclient import TestClient

    from kgpt2.serving import create_app

    app = create_app(tiny_lm, MODEL, max_batch_size=2, max_body_bytes=4096, api_key="k")
    with TestClient(app, headers={"Authorization": "Bearer k"}) as client:
        yield client


def _error(answer, status):
    assert answer.status_code == status, answer.text
    return answer.json()["error"]


@pytest.mark.parametrize("body, field", [
    ({"prompt": "a"}, "model"),
    ({"model": MODEL, "prompt": 5}, "prompt"),
    ({"model": MODEL, "prompt": "a", "max_tokens": "5"}, "max_tokens"),
    ({"model": MODEL, "prompt": "a", "temperature": "hot"}, "temperature"),
    ({"model": MODEL, "prompt": "a", "n": 1.5}, "n"),
    ({"model": MODEL, "prompt": "a", "stream": "yes"}, "stream"),
    ({"model": MODEL, "prompt": "a", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": MODEL, "prompt": "a", "stop": [""]}, "stop"),
    ({"model": MODEL, "prompt": [], "max_tokens": 4}, "prompt"),
    ({"model": MODEL, "prompt": "a " * 70}, "prompt"),
    ({"model": MODEL, "prompt": "a", "seed": -1}, "seed"),
    ({"model": MODEL, "prompt": "a", "sampler": "greedy", "top_k": -1}, "top_k"),
    ({"model": MODEL, "prompt": "a", "sampler": "random", "top_p": 0.5}, "sampler"),
    # Nothing is silently ignored: unknown fields and what GPT-2 cannot do.
    ({"model": MODEL, "prompt": "a", "frobnicate": True}, "frobnicate"),
    ({"model": MODEL, "prompt": "a", "suffix": "the end"}, "suffix"),
    ({"model": MODEL, "prompt": "a", "best_of": 3}, "best_of"),
    ({"model": MODEL, "prompt": "a", "logprobs": 6}, "logprobs"),
    ({"model": MODEL, "prompt": "a", "logit_bias": {"50257": 1}}, "logit_bias"),
    ({"model": MODEL, "prompt": "a", "logit_bias": {"13": -101}}, "logit_bias"),
    ({"model": MODEL, "prompt": "a", "presence_penalty": 2.5}, "presence_penalty"),
    ({"model": MODEL, "prompt": "a", "max_tokens": 4, "min_tokens": 5}, "min_tokens"),
    ({"model": MODEL, "prompt": "a", "stream_options": {"include_usage": True,
                                                        "extra": 1}}, "stream_options"),
])
def test_bad_fields_are_400_naming_them(client, body, field):
    error = _error(client.post("/v1/completions", json=body), 400)
    assert error["param"] == field and error["type"] == "invalid_request_error"
    assert field in error["message"]


@pytest.mark.parametrize("body, field", [
    ({"messages": [{"role": "user", "content": "Hi"}], "tools": []}, "tools"),
    ({"messages": [{"role": "user", "content": "Hi"}], "response_format": {}},
     "response_format"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": "Hi", "tool_calls": []}]}, "messages"),
    ({"messages": [{"role": "user", "content": "Hi"}], "top_logprobs": 2}, "top_logprobs"),
])
def test_bad_chat_fields_are_400_naming_them(client, body, field):
    error = _error(client.post("/v1/chat/completions", json={"model": MODEL, **body}), 400)
    assert error["param"] == field and field in error["message"]


def test_chat_without_a_template_says_how_to_give_one(client):
    import openai

    # The official client, over the in-process app (TestClient is an httpx.Client).
    api = openai.OpenAI(base_url="http://testserver/v1", api_key="k", max_retries=0,
                        http_client=client)
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 400
    assert "--chat-template" in caught.value.body["message"]


def test_prompt_tokens_follow_the_bos_convention(client, tiny_lm):
    from kgpt2.serving.completions import CompletionService
    from kgpt2.serving.schemas import CompletionRequest

    engine = client.app.state.engine
    request = CompletionRequest(model=MODEL, prompt="Hello world", max_tokens=2)
    own = [int(i) for i in tiny_lm.preprocessor.tokenizer("Hello world")]
    end = tiny_lm.preprocessor.tokenizer.end_token_id
    assert CompletionService(engine, MODEL).check(request) == [[end, *own]]
    assert CompletionService(engine, MODEL, prepend_bos=False).check(request) == [own]
    # An empty prompt still gives the model a token to start from.
    empty = CompletionRequest(model=MODEL, prompt="", max_tokens=2)
    assert CompletionService(engine, MODEL, prepend_bos=False).check(empty) == [[end]]


@pytest.mark.slow
def test_usage_counts_each_prompt_once_whatever_n(client):
    answer = client.post("/v1/completions", json={
        "model": MODEL, "prompt": ["Hello world", "Hi"], "n": 2, "max_tokens": 3,
        "temperature": 0}).json()
    # <|endoftext|> + 2 tokens, <|endoftext|> + 1 token; never times n.
    assert answer["usage"]["prompt_tokens"] == 3 + 2
    assert len(answer["choices"]) == 4 and answer["usage"]["completion_tokens"] <= 4 * 3


@pytest.mark.slow
def test_min_tokens_holds_back_the_end_token(client):
    # A +100 bias makes <|endoftext|> the greedy choice at every step.
    body = {"model": MODEL, "prompt": "Hi", "max_tokens": 8, "temperature": 0,
            "logit_bias": {"50256": 100}}
    eager = client.post("/v1/completions", json=body).json()
    assert eager["usage"]["completion_tokens"] == 1
    assert eager["choices"][0]["finish_reason"] == "stop"
    held = client.post("/v1/completions", json={**body, "min_tokens": 3}).json()
    # Three tokens, then the end token as soon as it is allowed.
    assert held["usage"]["completion_tokens"] == 4
    assert held["choices"][0]["finish_reason"] == "stop" and held["choices"][0]["text"]


def test_malformed_json_and_non_object_bodies(client):
    error = _error(client.post("/v1/completions", content=b'{"model": ',
                               headers={"Content-Type": "application/json"}), 400)
    assert "not valid JSON" in error["message"]
    error = _error(client.post("/v1/completions", json=["a"]), 400)
    assert error["message"]


def test_body_size_cap_and_api_key(client):
    body = json.dumps({"model": MODEL, "prompt": "a" * 5000})
    error = _error(client.post("/v1/completions", content=body,
                               headers={"Content-Type": "application/json"}), 413)
    assert "4096 bytes" in error["message"]
    error = _error(client.get("/v1/models", headers={"Authorization": "Bearer nope"}), 401)
    assert error["code"] == "invalid_api_key"
    assert client.get("/health", headers={"Authorization": ""}).json()["status"] == "ok"


@pytest.mark.slow
def test_stop_sequence_cuts_the_text(client):
    plain = client.post("/v1/completions", json={
        "model": MODEL, "prompt": "Hello", "max_tokens": 20, "temperature": 0}).json()
    text = plain["choices"][0]["text"]
    stop = text[5:9]
    cut = client.post("/v1/completions", json={
        "model": MODEL, "prompt": "Hello", "max_tokens": 20, "temperature": 0,
        "stop": stop}).json()["choices"][0]
    assert cut["text"] == text[: text.find(stop)] and cut["finish_reason"] == "stop"


@pytest.mark.slow
def test_stream_is_openai_server_sent_events(client):
    lines = []
    with client.stream("POST", "/v1/completions", json={
        "model": MODEL, "prompt": "Hi", "max_tokens": 6, "temperature": 0, "stream": True,
        "stream_options": {"include_usage": True},
    }) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in answer.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert chunks[-1]["usage"]["completion_tokens"] == 6 and chunks[-1]["choices"] == []
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert all(c["object"] == "text_completion" and c["model"] == MODEL for c in chunks)


def test_playground_page_is_served(client):
    page = client.get("/", headers={"Authorization": ""})
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="generate"' in page.text and "/v1/completions" in page.text
