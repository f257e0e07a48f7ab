"""`kgpt2.data.tfds_text` and `kgpt2.data.reddit_tifu`: TensorFlow Datasets text."""

import difflib
import pathlib

from kgpt2.data.errors import DataError
from kgpt2.data.pipeline import build_pipeline
from kgpt2.network import require_network

# Probed when a builder does not list its URLs: TFDS's own mirror.
TFDS_PROBE_URL = "https://storage.googleapis.com"
REDDIT_TIFU_CONFIGS = ("short", "long", "long_split")
REDDIT_TIFU_FIELDS = ("documents", "title", "tldr")


def _builder(name, data_dir):
    import tensorflow_datasets as tfds

    base = name.split("/", 1)[0].split(":", 1)[0]
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        close = difflib.get_close_matches(base, tfds.list_builders(with_community_datasets=False), n=5, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise DataError(
            f"Unknown TFDS dataset '{base}'.{hint} `tfds.list_builders()` lists them all."
        ) from None
    except ValueError as error:  # e.g. an unknown config
        configs = [c.name for c in getattr(tfds.builder_cls(base), "BUILDER_CONFIGS", [])]
        known = f" Its configs: {', '.join(configs)}." if configs else ""
        raise DataError(f"TFDS dataset '{name}' could not be built: "
                        f"{str(error).splitlines()[0]}{known}") from None


def _download_urls(builder):
    """The URLs `download_and_prepare` will fetch; empty when nothing is needed.

    Nothing is fetched for a prepared dataset, one with manual download
    instructions, files already in TFDS's download cache, or under
    `tfds.testing.mock_data` (whose `download_and_prepare` is a no-op).
    """
    from tensorflow_datasets.core.download import resource

    method = type(builder).download_and_prepare
    if getattr(method, "__module__", "").startswith("tensorflow_datasets.testing"):
        return []
    if builder.is_prepared() or getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None):
        return []
    try:
        infos = dict(type(builder).url_infos or {})
    except Exception:  # Builders without a checksums file have no URL list.
        infos = {}
    if not infos:
        return [TFDS_PROBE_URL]
    downloads = pathlib.Path(builder.data_dir_root) / "downloads"
    return [
        url for url, info in infos.items()
        if not (downloads / resource.get_dl_fname(url, info.checksum)).exists()
    ]


def _text_key(builder, text_key):
    """Return the feature to read, checking it exists and holds text."""
    import tensorflow_datasets as tfds

    features = builder.info.features
    text_keys = [k for k, f in features.items() if isinstance(f, tfds.features.Text)]
    listing = (
        f"Its text features: {', '.join(text_keys) or 'none'} "
        f"(all features: {', '.join(features.keys())})."
    )
    if text_key is None:
        supervised = builder.info.supervised_keys or ()
        if len(text_keys) == 1:
            return text_keys[0]
        if supervised and supervised[0] in text_keys:
            return supervised[0]  # The input side, e.g. Reddit TIFU's documents.
        raise DataError(f"TFDS dataset '{builder.name}' has several text features; pass text_key. {listing}")
    if text_key not in text_keys:
        problem = f": feature '{text_key}' is not text" if text_key in features else (
            f" has no feature '{text_key}'"
        )
        raise DataError(f"TFDS dataset '{builder.info.full_name}'{problem}. {listing}")
    return text_key


def tfds_text(name, split="train", text_key=None, data_dir=None, download=True, **pipeline):
    """A pipeline over one text feature of a TensorFlow Datasets dataset.

    The dataset is built with `tfds.builder(name).download_and_prepare()`
    and read with `as_dataset(split)`, like `tfds.load`; on first use that
    downloads it (network needed), later calls reuse `data_dir`.

    Args:
        name: the TFDS name, with an optional config and version, e.g.
            `"reddit_tifu/short"` or `"imdb_reviews"`.
        split: a TFDS split, slicing included (`"train[:10%]"`).
        text_key: the feature holding the text (for Reddit TIFU:
            `documents`, `title` or `tldr`). By default the only text
            feature, or else the input side of `supervised_keys`.
        data_dir: where TFDS keeps prepared data (default
            `~/tensorflow_datasets`).
        download: prepare the data if `data_dir` lacks it; with False a
            missing dataset is an error.
        **pipeline: the shared options of `kgpt2.data.pipeline`.

    Returns:
        A `tf.data.Dataset` of string batches (or packed model inputs with
        `pack=True`): all of it, or the `subset` of a `validation_split`.

    Raises:
        DataError: an unknown dataset (close names are suggested) or config,
            a `text_key` that is not a text feature (the text features are
            listed), or data that could not be downloaded and prepared.

    Example:
    ```python
    import kgpt2

    # Downloads Reddit TIFU (640 MB) on first use.
    data = kgpt2.data.tfds_text("reddit_tifu/short", text_key="documents", take=500)
    ```
    """
    builder = _builder(name, data_dir)
    key = _text_key(builder, text_key)
    if download:
        try:
            urls = _download_urls(builder)
            if urls:
                # TFDS retries for minutes offline; a probe answers in seconds.
                require_network(urls[0])
            builder.download_and_prepare()
        except Exception as error:  # Network, checksum and disk errors alike.
            reason = type(error).__name__
            if str(error):
                reason += f": {str(error).splitlines()[0][:300]}"
            raise DataError(
                f"TFDS dataset '{builder.info.full_name}' could not be downloaded "
                f"and prepared in '{builder.data_dir}' ({reason}). Without network "
                "access, prepare it where there is some and pass data_dir= a copy "
                f"of that TFDS data folder (here '{builder.data_dir_root}')."
            ) from error
    elif not builder.is_prepared():
        raise DataError(
            f"TFDS dataset '{builder.info.full_name}' is not prepared in "
            f"'{builder.data_dir}' and download=False."
        )
    try:
        examples = builder.as_dataset(split=split, shuffle_files=False)
    except (ValueError, KeyError) as error:
        splits = ", ".join(builder.info.splits.keys()) or "unknown"
        raise DataError(
            f"TFDS dataset '{builder.info.full_name}' has no split '{split}' "
            f"(its splits: {splits}): {str(error).splitlines()[0]}"
        ) from None
    texts = examples.map(lambda example: example[key])
    return build_pipeline(texts, f"tfds:{name}[{split}].{key}", **pipeline)


def reddit_tifu(config="short", field="documents", split="train", data_dir=None, **pipeline):
    """Reddit TIFU posts from TFDS, the reference fine-tuning corpus.

    `reddit_tifu(take=500)` is the reference recipe: the `short` config's
    documents, batched by 32, cached, prefetched, 500 batches.

    Args:
        config: `short` (79,740 posts), `long` (42,139, those with a TL;DR)
            or `long_split` (the same with train/test/validation splits).
        field: `documents` (the post), `title` or `tldr`.
        split: `train` (the only split of `short` and `long`).
        data_dir: where TFDS keeps prepared data.
        **pipeline: the shared options of `kgpt2.data.pipeline`.

    Example:
    ```python
    import kgpt2

    # Downloads Reddit TIFU (640 MB) on first use.
    data = kgpt2.data.reddit_tifu("short", field="documents", take=500)
    ```
    """
    if config not in REDDIT_TIFU_CONFIGS:
        raise DataError(f"reddit_tifu config must be one of {', '.join(REDDIT_TIFU_CONFIGS)}, got {config!r}.")
    if field not in REDDIT_TIFU_FIELDS:
        raise DataError(f"reddit_tifu field must be one of {', '.join(REDDIT_TIFU_FIELDS)}, got {field!r}.")
    return tfds_text(f"reddit_tifu/{config}", split, field, data_dir, **pipeline)
