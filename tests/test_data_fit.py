"""`GPT2CausalLM.fit` consumes every adapter's pipeline (2 steps each)."""

import math

import numpy as np
import pytest
from reddit_tifu_cache import prepare_download_cache

import kgpt2


@pytest.fixture(scope="module")
def trained_lm():
    """One compiled model for all cases: JAX compiles its train step once."""
    import keras

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    lm.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=["accuracy"],
    )
    return lm


@pytest.fixture(scope="module")
def tifu_dir(tmp_path_factory):
    return str(prepare_download_cache(tmp_path_factory.mktemp("tfds")))


# Every adapter once (csv/txt pipelines are the jsonl one's strings from
# another reader); each unpacked case costs KerasHub's per-fit trace of
# the preprocessor (~5 s on 2 cores), the first one also the JAX compile.
ADAPTERS = {
    "from_texts": lambda f, d, lm, **o: kgpt2.data.from_texts(["床前明月光", "疑是地上霜", "举头望明月"], **o),
    "poetry_tang": lambda f, d, lm, **o: kgpt2.data.poetry(f / "tang", **o),
    "poetry_song_ci": lambda f, d, lm, **o: kgpt2.data.poetry(f / "song_ci", include_title=True, **o),
    "text_jsonl_spec": lambda f, d, lm, **o: kgpt2.data.from_spec(f"jsonl:{f / 'text' / 'reviews.jsonl'}#body", **o),
    "reddit_tifu": lambda f, d, lm, **o: kgpt2.data.reddit_tifu(data_dir=d, **o),
    "poetry_packed": lambda f, d, lm, **o: kgpt2.data.poetry(
        f / "tang", pack=True, sequence_length=64, tokenizer=lm.preprocessor.tokenizer, **o
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_fit_consumes_pipeline(adapter, trained_lm, fixtures_dir, tifu_dir):
    import keras

    data = ADAPTERS[adapter](fixtures_dir, tifu_dir, trained_lm, batch_size=2, take=2)
    steps = []

    class CountSteps(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(float(logs["loss"]))

    before = [w.copy() for w in trained_lm.get_weights()]
    preprocessor = trained_lm.preprocessor
    if kgpt2.data.is_preprocessed(data):
        trained_lm.preprocessor = None  # fit would re-tokenize token ids.
    try:
        trained_lm.fit(data, epochs=1, verbose=0, callbacks=[CountSteps()])
    finally:
        trained_lm.preprocessor = preprocessor
    assert len(steps) == 2 and all(math.isfinite(loss) for loss in steps)
    assert any(not np.array_equal(a, b) for a, b in zip(before, trained_lm.get_weights()))
