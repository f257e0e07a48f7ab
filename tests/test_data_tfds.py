"""`kgpt2.data.tfds_text` / `reddit_tifu`: the real builder on TFDS's dummy
records (offline, see reddit_tifu_cache.py) and `tfds.testing.mock_data`."""

import pytest
from reddit_tifu_cache import prepare_download_cache

import kgpt2
from kgpt2.data import DataError


@pytest.fixture(scope="module")
def tifu_dir(tmp_path_factory):
    return str(prepare_download_cache(tmp_path_factory.mktemp("tfds")))


def texts_of(dataset):
    return sorted(s.decode() for batch in dataset for s in batch.numpy())


def test_reddit_tifu_builds_from_dummy_records(tifu_dir):
    documents = kgpt2.data.reddit_tifu("short", data_dir=tifu_dir, batch_size=2)
    # The builder maps documents = selftext_without_tldr, title = trimmed_title.
    assert texts_of(documents) == ["some text", "some text 2", "some text 3"]
    titles = kgpt2.data.reddit_tifu("long", field="title", data_dir=tifu_dir)
    assert texts_of(titles) == ["title trimed", "title trimed 2", "title trimed 3"]
    # Prepared once; later calls read the TFRecords without the download cache.
    again = kgpt2.data.tfds_text("reddit_tifu/short", data_dir=tifu_dir, download=False)
    assert texts_of(again) == texts_of(documents)


def test_reddit_tifu_long_split_splits(tifu_dir):
    for split, document in [("train", "some text"), ("test", "some text 3"), ("validation", "some text 2")]:
        data = kgpt2.data.reddit_tifu("long_split", split=split, data_dir=tifu_dir)
        assert texts_of(data) == [document]
    with pytest.raises(DataError, match="has no split 'dev'.*train, test, validation"):
        kgpt2.data.reddit_tifu("long_split", split="dev", data_dir=tifu_dir)


@pytest.mark.slow
def test_reddit_tifu_validation_split_and_packing(tifu_dir):
    options = dict(data_dir=tifu_dir, validation_split=0.34, pack=True, sequence_length=2,
                   tokenizer=kgpt2.presets.gpt2_tokenizer())
    train = kgpt2.data.reddit_tifu(subset="training", **options)
    validation = kgpt2.data.reddit_tifu(subset="validation", **options)
    assert kgpt2.data.is_preprocessed(train) and kgpt2.data.is_preprocessed(validation)
    assert len(list(validation.unbatch())) >= 1


def test_mock_data_any_text_feature():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=7):
        data = kgpt2.data.tfds_text("imdb_reviews", batch_size=4)  # the only text feature
        batches = list(data)
        titles = kgpt2.data.tfds_text("reddit_tifu/long", text_key="tldr", take=1, batch_size=3)
        assert len(list(titles)) == 1
    assert [b.shape[0] for b in batches] == [4, 3]
    assert all(b.dtype.name == "string" for b in batches)


def test_unknown_text_key_lists_text_features():
    with pytest.raises(DataError, match="has no feature 'body'. Its text features: documents, tldr, title, id"):
        kgpt2.data.tfds_text("reddit_tifu/short", text_key="body")
    with pytest.raises(DataError, match="feature 'score' is not text. Its text features"):
        kgpt2.data.tfds_text("reddit_tifu/short", text_key="score")


def test_unknown_dataset_and_config_are_named():
    with pytest.raises(DataError, match="Unknown TFDS dataset 'reddit_tifoo'. Did you mean: reddit_tifu"):
        kgpt2.data.tfds_text("reddit_tifoo")
    with pytest.raises(DataError, match="reddit_tifu/shrt.*Its configs: short, long, long_split"):
        kgpt2.data.tfds_text("reddit_tifu/shrt")
    with pytest.raises(DataError, match="config must be one of short, long, long_split"):
        kgpt2.data.reddit_tifu("medium")


def test_unprepared_without_download(tmp_path):
    with pytest.raises(DataError, match="is not prepared in .* and download=False"):
        kgpt2.data.reddit_tifu(data_dir=str(tmp_path), download=False)


def test_failed_download_is_explained(tmp_path, monkeypatch):
    import socket

    import tensorflow_datasets as tfds

    def offline(self, *args, **kwargs):  # What a machine without network gets, at once.
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", offline)
    # A listening proxy, so that the reachability probe passes and the
    # download itself is what fails.
    with socket.create_server(("127.0.0.1", 0)) as proxy:
        for variable in ("HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(variable, f"http://127.0.0.1:{proxy.getsockname()[1]}")
        with pytest.raises(DataError, match=(
            "reddit_tifu/short/1.1.2' could not be downloaded .*ConnectionError: no network.*data_dir="
        )):
            kgpt2.data.reddit_tifu(data_dir=str(tmp_path))
