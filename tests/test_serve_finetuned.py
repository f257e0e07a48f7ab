"""`kgpt2 serve` on a `kgpt2 finetune` run folder, through the official `openai` client."""

import pytest
from serve_helpers import ServerProcess
from training_helpers import text_dataset

pytestmark = pytest.mark.slow

RUN = "poems"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    import kgpt2

    root = tmp_path_factory.mktemp("runs")
    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    kgpt2.finetune(lm, text_dataset(count=8), steps=2, checkpoint_dir=str(root), run_name=RUN)
    return root / RUN


@pytest.fixture(scope="module")
def server(run_dir):
    process = ServerProcess("--preset", str(run_dir), "--context-length", "128")
    yield process
    assert process.terminate() == 0


@pytest.fixture(scope="module")
def client(server):
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=120,
                         max_retries=0, http_client=openai.DefaultHttpxClient(trust_env=False))


def test_finetuned_run_is_served_under_its_name(client, run_dir):
    import kgpt2

    assert [model.id for model in client.models.list()] == [RUN]
    answer = client.completions.create(model=RUN, prompt="床前明月光", max_tokens=10,
                                       temperature=0)
    lm = kgpt2.load(str(run_dir), sequence_length=128)
    prompt_tokens = answer.usage.prompt_tokens
    expected = kgpt2.generate(lm, "床前明月光", sampler="greedy", include_prefix=False,
                              max_length=prompt_tokens + 10)[0]
    assert answer.choices[0].text == expected


def test_finetuned_run_streams_and_batches(client):
    pieces = [c.choices[0].text for c in client.completions.create(
        model=RUN, prompt="春眠", max_tokens=12, stream=True, seed=1)]
    assert len(pieces) > 1 and "\ufffd" not in "".join(pieces[:-1])
    answer = client.completions.create(model=RUN, prompt=["春", "秋"], n=2, max_tokens=5,
                                       seed=2)
    assert sorted(c.index for c in answer.choices) == [0, 1, 2, 3]
