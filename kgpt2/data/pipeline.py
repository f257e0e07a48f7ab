"""Shared pipeline options: shuffle, batch, take, cache, prefetch, split, pack.

Every adapter (`tfds_text`, `reddit_tifu`, `poetry`, `text`, `from_texts`,
`from_spec`) reads its texts and hands them to `build_pipeline`, so all of
them accept the same keywords with the same defaults:

- `batch_size=32`: texts (or packed windows) per batch.
- `shuffle=True`, `seed=0`: seeded shuffling, a new order every epoch.
- `take=None`: keep only this many batches, as `.take(500)` in the
  reference Reddit TIFU recipe. The same examples are used every epoch
  (reshuffled), and only they are tokenized and cached.
- `cache=True`: cache the texts (or packed windows) in memory after the
  first epoch; a string caches to files with that prefix instead.
- `prefetch=True`: overlap input preparation with training.
- `validation_split=None`, `subset=None`: hold out a fraction in (0, 1) of
  the texts, as `keras.utils.text_dataset_from_directory` does: with
  `subset="training"` the adapter returns the rest, with
  `subset="validation"` the held-out part; call it twice (same `seed`) for
  both. The texts are split before packing, at random with `seed` (or the
  last ones when `shuffle=False`), the same way on every call. The
  validation set is never shuffled; `take` caps it too. Every adapter
  returns one `tf.data.Dataset`, whatever the options.
- `pack=False`, `sequence_length=None`, `tokenizer=None`: with `pack=True`
  the texts are tokenized and packed into full windows when the pipeline is
  built (see `kgpt2.data.packing`); both other options are then required.

Unpacked pipelines yield batches of strings, what `GPT2CausalLM.fit` with
its preprocessor attached expects. Packed pipelines yield `(x, y,
sample_weight)` like `GPT2CausalLMPreprocessor`; fit them with the
preprocessor detached (see `kgpt2.data.is_preprocessed`).
"""

import inspect
import numbers

from kgpt2.data.errors import DataError
from kgpt2.data.packing import pack as pack_windows

# The shuffle buffer when the number of texts is unknown (a streamed dataset).
TEXT_SHUFFLE_BUFFER = 10_000


def _positive_int(value, name, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        allowed = "None or an integer >= 1" if allow_none else "an integer >= 1"
        raise DataError(f"{name} must be {allowed}, got {value!r}.")


SUBSETS = ("training", "validation")


def _check_split(validation_split, subset):
    if validation_split is None:
        if subset is not None:
            raise DataError(
                f"subset={subset!r} needs validation_split, the fraction to hold out."
            )
        return
    if not (isinstance(validation_split, numbers.Real) and 0 < validation_split < 1):
        raise DataError(
            f"validation_split must be None or a fraction between 0 and 1 "
            f"(exclusive), got {validation_split!r}."
        )
    if subset not in SUBSETS:
        raise DataError(
            f"validation_split={validation_split} needs subset='training' or "
            f"subset='validation' (got {subset!r}); call twice, with the same seed, "
            "for both parts."
        )


def _check_options(batch_size, take, validation_split, subset, pack, sequence_length,
                   tokenizer):
    _positive_int(batch_size, "batch_size")
    _positive_int(take, "take", allow_none=True)
    _check_split(validation_split, subset)
    if pack:
        if tokenizer is None:
            raise DataError(
                "pack=True needs the model's tokenizer: pass "
                "tokenizer=lm.preprocessor.tokenizer."
            )
        if isinstance(sequence_length, bool) or not isinstance(
            sequence_length, numbers.Integral
        ) or sequence_length < 2:
            raise DataError(
                "pack=True needs sequence_length, an integer >= 2 (the model's "
                f"input length, e.g. lm.preprocessor.sequence_length), got "
                f"{sequence_length!r}."
            )


def _as_dataset(texts, source):
    """Return `(dataset, count)`; `count` is None when it is not known."""
    import tensorflow as tf

    if isinstance(texts, tf.data.Dataset):
        spec = texts.element_spec
        if not (isinstance(spec, tf.TensorSpec) and spec.dtype == tf.string and spec.shape.rank == 0):
            raise DataError(f"{source}: expected a dataset of single strings, got elements {spec}.")
        count = int(texts.cardinality())
        if count == tf.data.INFINITE_CARDINALITY:
            raise DataError(f"{source}: the dataset repeats forever; pass a finite one.")
        return texts, (count if count >= 0 else None)
    if not texts:
        raise DataError(f"{source}: there are no texts.")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(
                f"{source}: text {index} is a {type(text).__name__}, not a str: {text!r:.80}"
            )
    return tf.data.Dataset.from_tensor_slices(list(texts)), len(texts)


def _count(dataset):
    return int(dataset.reduce(0, lambda count, _: count + 1))


def _split(dataset, count, fraction, shuffle, seed, source):
    """Return `(train, train_count), (validation, validation_count)`."""
    if count is None:
        count = _count(dataset)
    held_out = max(1, round(count * fraction))
    if held_out >= count:
        raise DataError(
            f"{source}: validation_split={fraction} of {count} text(s) leaves "
            "nothing to train on; use a smaller fraction or more data."
        )
    if shuffle:
        # A fixed order (same for every iterator) so the two parts stay disjoint.
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=False)
        return (dataset.skip(held_out), count - held_out), (dataset.take(held_out), held_out)
    kept = count - held_out
    return (dataset.take(kept), kept), (dataset.skip(kept), held_out)


def _require_examples(dataset, count, source, pack, sequence_length, part):
    """Raise if `dataset` is empty; a peek reads one element, before caching."""
    if count is not None:
        empty = count == 0
    else:
        empty = not any(True for _ in dataset.take(1))
    if not empty:
        return
    if pack:
        raise DataError(
            f"{source}: the {part} texts hold fewer than sequence_length + 1 = "
            f"{sequence_length + 1} tokens, so packing yields no window. Use "
            "more texts or a shorter sequence_length."
        )
    raise DataError(f"{source}: there are no {part} texts.")


def _finish(dataset, count, training, source, options):
    import tensorflow as tf

    batch_size, take = options["batch_size"], options["take"]
    if options["pack"]:
        wanted = None if take is None else take * batch_size
        dataset = pack_windows(dataset, options["tokenizer"], options["sequence_length"], wanted)
        count = int(dataset.cardinality())
    if take is not None:
        dataset = dataset.take(take * batch_size)
        count = None if count is None else min(count, take * batch_size)
    part = "training" if training else "validation"
    _require_examples(dataset, count, source, options["pack"], options["sequence_length"], part)
    cache = options["cache"]
    if cache:
        dataset = dataset.cache() if cache is True else dataset.cache(
            str(cache) + ("" if training else ".validation")
        )
    if options["shuffle"] and training:
        # Known counts are in memory anyway (cached, or packed windows).
        buffer = count if count is not None else TEXT_SHUFFLE_BUFFER
        if take is not None:
            buffer = min(buffer, take * batch_size)
        dataset = dataset.shuffle(buffer, seed=options["seed"], reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if options["prefetch"]:
        dataset = dataset.prefetch(tf.data.AUTOTUNE)
    return dataset


def build_pipeline(
    texts,
    source="texts",
    *,
    batch_size=32,
    shuffle=True,
    seed=0,
    take=None,
    cache=True,
    prefetch=True,
    validation_split=None,
    subset=None,
    pack=False,
    sequence_length=None,
    tokenizer=None,
):
    """Turn texts into a batched `tf.data` pipeline (see the module docstring).

    Args:
        texts: a non-empty list of strings, or a finite `tf.data.Dataset`
            of scalar strings.
        source: how error messages name the input, e.g. `poetry:PATH`.
        batch_size, shuffle, seed, take, cache, prefetch, validation_split,
        subset, pack, sequence_length, tokenizer: the shared options
            described in this module's docstring.

    Returns:
        A batched `tf.data.Dataset`: all the texts, or with
        `validation_split` the `subset` asked for.

    Raises:
        DataError: a bad option value, no texts, a validation split that
            leaves nothing to train on, or texts too short to fill one
            packed window.

    Example:
    ```python
    from kgpt2.data.pipeline import build_pipeline

    texts = ["one", "two", "three", "four"]
    train = build_pipeline(texts, batch_size=2, validation_split=0.25, subset="training")
    validation = build_pipeline(texts, batch_size=2, validation_split=0.25, subset="validation")
    print([len(batch) for batch in train], [len(b) for b in validation])  # [2, 1] [1]
    ```
    """
    _check_options(batch_size, take, validation_split, subset, pack, sequence_length,
                   tokenizer)
    options = dict(
        batch_size=batch_size, shuffle=shuffle, seed=seed, take=take, cache=cache,
        prefetch=prefetch, pack=pack, sequence_length=sequence_length, tokenizer=tokenizer,
    )
    dataset, count = _as_dataset(texts, source)
    if validation_split is None:
        if shuffle:
            # Shuffle the texts once (fixed, seeded) so that `take` and the
            # packed windows draw from the whole corpus, not its first files.
            buffer = count if count is not None else TEXT_SHUFFLE_BUFFER
            dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=False)
        return _finish(dataset, count, True, source, options)
    (train, train_count), (held, held_count) = _split(
        dataset, count, validation_split, shuffle, seed, source
    )
    if subset == "training":
        return _finish(train, train_count, True, source, options)
    return _finish(held, held_count, False, source, options)


def pipeline_options():
    """The keyword options every adapter passes on to `build_pipeline`.

    Example:
    ```python
    from kgpt2.data.pipeline import pipeline_options

    print("batch_size" in pipeline_options())  # True
    ```
    """
    parameters = inspect.signature(build_pipeline).parameters.values()
    return tuple(p.name for p in parameters if p.kind is p.KEYWORD_ONLY)


def check_options(owner, options, extra=()):
    """Raise `DataError` naming any key of `options` that `owner` does not take.

    `extra` lists the options `owner` takes besides `pipeline_options()`.

    Example:
    ```python
    from kgpt2.data.pipeline import check_options

    check_options("from_texts", {"batch_size": 8})  # passes
    ```
    """
    allowed = (*extra, *pipeline_options())
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DataError(
            f"{owner} does not take {', '.join(unknown)}. Its options are: "
            f"{', '.join(allowed)}."
        )


def from_texts(texts, **pipeline):
    """A pipeline over strings in memory.

    Args:
        texts: a non-empty list (or other iterable) of strings.
        **pipeline: the shared options of `kgpt2.data.pipeline` (batch_size,
            shuffle, seed, take, cache, prefetch, validation_split, subset,
            pack, sequence_length, tokenizer).

    Returns:
        A `tf.data.Dataset` of string batches (or of packed `(x, y,
        sample_weight)` with `pack=True`).

    Example:
    ```python
    import kgpt2

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    data = kgpt2.data.from_texts(["床前明月光", "疑是地上霜"] * 8, batch_size=4)
    lm.fit(data, epochs=1, verbose=0)
    ```
    """
    if isinstance(texts, str):
        raise DataError("from_texts() takes a list of strings, got one str.")
    check_options("from_texts", pipeline)
    return build_pipeline(list(texts), "from_texts", **pipeline)
