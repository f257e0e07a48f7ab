"""Packing: short texts concatenated into full `sequence_length` windows.

Padding every short text (a poem line, a Reddit title) to the sequence length
spends most of each batch on padding. Packing instead joins the texts into
one token stream, each text preceded by `<|endoftext|>` (id 50256, GPT-2's
document separator and the start token `GPT2CausalLMPreprocessor` adds), and
cuts that stream into windows of `sequence_length + 1` tokens, dropping the
last partial window. Each window becomes exactly what the preprocessor
yields, with no padding at all:
`({"token_ids": w[:-1], "padding_mask": all True}, w[1:], all True)`.
"""

import weakref

from kgpt2.presets.tokenizer import END_OF_TEXT_ID

TOKENIZE_BATCH = 256
_GRAPH_TOKENIZERS = weakref.WeakKeyDictionary()


def graph_tokenizer(tokenizer):
    """Return `tokenizer` wrapped to run KerasHub's TensorFlow workflow.

    Called eagerly on a non-TensorFlow backend, KerasHub 0.32's
    `BytePairTokenizer` runs its Python workflow (HF `tokenizers` with
    Llama 3's split pattern), which lets a punctuation mark join the
    letters after it: "（见" gives other ids there than in GPT-2. Inside a
    `tf.function`, as in `fit`'s `tf.data` pipeline, it runs the TF
    workflow with GPT-2's split pattern. Packing must produce the ids `fit`
    would, so it tokenizes in a graph.

    Example:
    ```python
    import kgpt2
    from kgpt2.data.packing import graph_tokenizer

    tokenize = graph_tokenizer(kgpt2.presets.gpt2_tokenizer())
    print(tokenize(["Hello world"]).to_list())  # [[15496, 995]]
    ```
    """
    import tensorflow as tf

    # Tracing costs seconds; train and validation parts share one trace.
    if tokenizer not in _GRAPH_TOKENIZERS:
        _GRAPH_TOKENIZERS[tokenizer] = tf.function(
            lambda batch: tokenizer(batch),
            input_signature=[tf.TensorSpec([None], tf.string)],
        )
    return _GRAPH_TOKENIZERS[tokenizer]


def pack_tokens(texts, tokenizer, window, max_windows=None):
    """Return a `[n, window]` int32 array: the separated token stream, cut.

    Tokenizes `TOKENIZE_BATCH` texts at a time and stops as soon as
    `max_windows` windows are full, so `take` bounds the work.
    """
    import numpy as np

    tokenize = graph_tokenizer(tokenizer)
    separator = np.array([END_OF_TEXT_ID], np.int32)
    pieces, length = [], 0
    for batch in texts.batch(TOKENIZE_BATCH):
        rows = tokenize(batch)
        ends = np.cumsum(rows.row_lengths().numpy())
        tokens = rows.flat_values.numpy().astype(np.int32)
        for start, end in zip(np.concatenate([[0], ends[:-1]]), ends):
            pieces += [separator, tokens[start:end]]
        length += len(tokens) + len(ends)
        if max_windows is not None and length >= max_windows * window:
            break
    stream = np.concatenate(pieces) if pieces else np.zeros([0], np.int32)
    count = len(stream) // window
    if max_windows is not None:
        count = min(count, max_windows)
    return stream[: count * window].reshape(count, window)


def pack(texts, tokenizer, sequence_length, max_windows=None):
    """Turn a `tf.data.Dataset` of strings into packed training windows.

    The texts are tokenized when the pipeline is built, a batch at a time,
    with the graph (TensorFlow) workflow that `fit` uses (see
    `graph_tokenizer`). The number of windows is then known, so
    `len(dataset)`, progress bars and learning-rate schedules work; the
    windows are held in memory (4 bytes a token).

    Args:
        texts: a dataset of scalar strings, in the order to concatenate.
        tokenizer: the model's tokenizer, e.g. `lm.preprocessor.tokenizer`.
        sequence_length: the model input length; windows hold one more
            token so that inputs and labels are the same window shifted.
        max_windows: stop after this many windows (None: use every text).

    Returns:
        An unbatched dataset of `(x, y, sample_weight)` triples with the
        dtypes and keys of `keras_hub.models.GPT2CausalLMPreprocessor`.

    Example:
    ```python
    import tensorflow as tf
    import kgpt2
    from kgpt2.data.packing import pack

    tokenizer = kgpt2.presets.gpt2_tokenizer()
    texts = tf.data.Dataset.from_tensor_slices(["Hello world"] * 10)
    x, y, sample_weight = next(iter(pack(texts, tokenizer, 8)))
    print(x["token_ids"].shape, y.shape)  # (8,) (8,)
    ```
    """
    import tensorflow as tf

    windows = pack_tokens(texts, tokenizer, sequence_length + 1, max_windows)

    def to_inputs(tokens):
        mask = tf.ones([sequence_length], tf.bool)
        x = {"token_ids": tokens[:-1], "padding_mask": mask}
        return x, tokens[1:], mask

    return tf.data.Dataset.from_tensor_slices(windows).map(to_inputs)


def is_preprocessed(dataset):
    """Whether `dataset` already yields model inputs rather than strings.

    Packed pipelines (`pack=True`) yield `(x, y, sample_weight)` with token
    ids, exactly as `GPT2CausalLMPreprocessor` would. KerasHub's
    `CausalLM.fit` always applies an attached preprocessor to its input, and
    that fails on token ids, so detach it while fitting such a dataset
    (`lm.preprocessor = None`, then restore it for `generate`); kgpt2's
    fine-tuning helper does this when this function returns True.

    Example:
    ```python
    import kgpt2

    tokenizer = kgpt2.presets.gpt2_tokenizer()
    texts = ["a short poem", "another one"] * 20
    print(kgpt2.data.is_preprocessed(kgpt2.data.from_texts(texts)))  # False
    packed = kgpt2.data.from_texts(
        texts, pack=True, sequence_length=16, tokenizer=tokenizer
    )
    print(kgpt2.data.is_preprocessed(packed))  # True
    ```
    """
    spec = dataset.element_spec
    return (
        isinstance(spec, tuple)
        and len(spec) > 0
        and isinstance(spec[0], dict)
        and "token_ids" in spec[0]
    )
