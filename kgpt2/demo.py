"""`kgpt2 demo`: fine-tune briefly on Tang poems and generate, offline.

The demo is the tour of kgpt2 in one call: load a preset, build packed
training and held-out pipelines from the Tang poem sample shipped in the
package (`kgpt2.data`), measure the held-out perplexity, fine-tune
(`kgpt2.finetune`) into a run folder it names, measure again, and generate
two samples (`kgpt2.generate`, a top-k sampler that keeps the text valid
UTF-8 and writes at least 30 tokens). Progress goes to the "kgpt2" logger;
the results (perplexities, samples, speed) are printed.
"""

import contextlib
import logging
import math
import pathlib
import re
import time

import kgpt2
from kgpt2.atomic import write_manifest
from kgpt2.atomic import writing_folder
from kgpt2.data.tang_sample import sample_poems_path
from kgpt2.presets.catalog import RANDOM_PRESETS
from kgpt2.training.recipe import default_learning_rate

logger = logging.getLogger("kgpt2")

DEFAULT_RUN_DIR = "kgpt2-demo"
# Written into every demo run folder: only such a folder is replaced.
DEMO_MARKER = ".kgpt2-demo"
# The demo's peak learning rate for a random preset. On the poems, 100 steps
# of gpt2_tiny_random reach a held-out perplexity of 65 at 5e-3, against 81
# at 2e-3 (the from-scratch default) and 83 at 1e-2 (`benchmarks/demo_form.py`);
# the demo's 60 steps reach 79 at 5e-3 (80 steps: 73, for about 5 s more CPU time).
DEMO_FROM_SCRATCH_LEARNING_RATE = 5e-3
# New tokens every sample has before it may end. The tiny model, briefly
# trained, picks <|endoftext|> after a character or two. A CJK character is
# at most three byte-level tokens and the model writes punctuation between
# them, so 48 tokens hold well over 10 characters.
DEMO_MIN_NEW_TOKENS = 48
DEMO_SAMPLES = 2


def is_ideograph(char):
    """Whether `char` is a CJK ideograph (a Chinese character, not punctuation).

    Example:
    ```python
    from kgpt2.demo import is_ideograph

    print([is_ideograph(c) for c in "春，a。"])  # [True, False, False, False]
    ```
    """
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF  # CJK Unified Ideographs
        or 0x3400 <= code <= 0x4DBF  # Extension A
        or 0x20000 <= code <= 0x2FA1F  # Extensions B-F, compatibility
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
    )


def is_cjk(char):
    """Whether `char` is a CJK ideograph or CJK/full-width punctuation.

    Example:
    ```python
    from kgpt2.demo import is_cjk

    print([is_cjk(c) for c in "春，a。"])  # [True, True, False, True]
    ```
    """
    code = ord(char)
    return (
        is_ideograph(char)
        or 0x3000 <= code <= 0x303F  # CJK punctuation: 。、「」
        or 0xFF00 <= code <= 0xFFEF  # full-width forms: ，！？：；
    )


def cjk_share(text):
    """The share of `text`'s non-space characters that `is_cjk` accepts.

    Example:
    ```python
    from kgpt2.demo import cjk_share

    print(cjk_share("床前明月光，疑是地上霜。"), cjk_share("ab春。"))  # 1.0 0.5
    ```
    """
    chars = [char for char in text if not char.isspace()]
    return sum(map(is_cjk, chars)) / len(chars) if chars else 0.0


# The marks that end a line of a Tang poem (its `paragraphs` hold two lines each).
LINE_ENDS = "，。！？；"


def line_lengths(text):
    """The lengths, in characters, of `text`'s complete lines.

    A line ends with one of `LINE_ENDS` (，。！？；); the text after the last
    one is unfinished and not counted. Spaces count as characters.

    Example:
    ```python
    from kgpt2.demo import line_lengths

    print(line_lengths("床前明月光，疑是地上霜。举头"))  # [5, 5]
    ```
    """
    return [len(line) for line in re.split(f"[{LINE_ENDS}]", text)[:-1]]


def poem_form_share(texts, lengths=(5, 7)):
    """The share of the complete lines of `texts` that are 5 or 7 characters.

    Tang poems are written in lines of five or seven characters, so this
    says how far generated text takes their form (0.0 when no line ends).

    Example:
    ```python
    from kgpt2.demo import poem_form_share

    print(poem_form_share(["床前明月光，疑是地上霜。", "春。。眠"]))  # 0.5
    ```
    """
    found = [length for text in texts for length in line_lengths(text)]
    return sum(length in lengths for length in found) / len(found) if found else 0.0


def prepare_run_dir(run_dir):
    """Make `run_dir` an empty demo run folder and return it as a Path.

    A folder an earlier demo wrote is replaced when it holds nothing but the
    files that demo listed in its manifest (`kgpt2.atomic.write_manifest`,
    written as the demo ends); a file added to it at any depth, or any other
    non-empty path, is left alone and refused.

    Raises:
        ForeignFilesError: `run_dir` holds files no demo wrote.

    Example:
    ```python
    import tempfile, pathlib
    from kgpt2.demo import prepare_run_dir

    folder = prepare_run_dir(pathlib.Path(tempfile.mkdtemp()) / "demo")
    print(sorted(p.name for p in folder.iterdir()))  # ['.kgpt2-demo', '.kgpt2-manifest.json']
    ```
    """
    run_dir = pathlib.Path(run_dir)
    with writing_folder(run_dir) as staging:
        (staging / DEMO_MARKER).write_text(
            "Written by `kgpt2 demo`: the next demo replaces this folder.\n", "utf-8"
        )
    return run_dir


def _summed_loss_function(lm):
    """`f(inputs, labels, weights) -> (summed token loss, summed weight)`.

    On JAX one `jax.jit` whose weights are arguments, so the same program
    serves before and after fine-tuning; elsewhere eager forward passes.
    Either is cheaper than `evaluate`, whose program `compile` discards.
    """
    import keras
    from keras import ops

    def summed_loss(logits, labels, weights):
        losses = keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True
        )
        weights = ops.cast(weights, "float32")
        return ops.sum(losses * weights), ops.sum(weights)

    if keras.config.backend() != "jax":
        return lambda inputs, labels, weights: summed_loss(
            lm(inputs, training=False), labels, weights
        )
    import jax

    @jax.jit
    def compiled(trainable, non_trainable, inputs, labels, weights):
        logits, _ = lm.stateless_call(trainable, non_trainable, inputs)
        return summed_loss(logits, labels, weights)

    def run(inputs, labels, weights):
        return compiled(
            [v.value for v in lm.trainable_variables],
            [v.value for v in lm.non_trainable_variables],
            inputs, labels, weights,
        )

    return run


@contextlib.contextmanager
def _logger_level(logger, level):
    """Set `logger`'s level inside the block, then restore it."""
    saved = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(saved)


def held_out_perplexity(lm, dataset, loss_function=None):
    """exp(mean token loss) of `lm` on a packed (tokenized) `dataset`.

    `loss_function` is what `_summed_loss_function(lm)` returns; pass the
    same one before and after fine-tuning to compile only once.

    Example:
    ```python
    import kgpt2
    from kgpt2.demo import held_out_perplexity

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    data = kgpt2.data.poetry(kgpt2.data.sample_poems_path(), batch_size=8, take=2, pack=True,
                             sequence_length=32, tokenizer=lm.preprocessor.tokenizer)
    # Random weights: close to the vocabulary size.
    print(held_out_perplexity(lm, data) > 1000)  # True
    ```
    """
    loss_function = loss_function or _summed_loss_function(lm)
    total, count = 0.0, 0.0
    for inputs, labels, weights in dataset.as_numpy_iterator():
        loss, weight = loss_function(inputs, labels, weights)
        total += float(loss)
        count += float(weight)
    return math.exp(total / count)


def run(
    preset="gpt2_tiny_random",
    steps=60,
    batch_size=8,
    sequence_length=48,
    learning_rate=None,
    prompt="春眠不觉晓",
    max_length=64,
    run_dir=DEFAULT_RUN_DIR,
    mixed_precision=None,
    printer=print,
):
    """Fine-tune `preset` on the bundled Tang poems and generate from `prompt`.

    Args:
        preset: any name `kgpt2.load` accepts.
        steps: training steps.
        batch_size, sequence_length: the training batch shape.
        learning_rate: peak of the polynomial decay; defaults to
            `DEMO_FROM_SCRATCH_LEARNING_RATE` (5e-3) for the random presets,
            else `kgpt2.training.recipe.default_learning_rate(preset)`.
        prompt: the generation prompt.
        max_length: generated sequence length in tokens, prompt included.
        run_dir: the run folder (replaced if it is a previous demo run,
            refused if it is anything else).
        mixed_precision: the fine-tune's `Recipe.mixed_precision`; None
            trains in mixed bfloat16 where that makes the step faster (JAX
            on a CPU with bfloat16 instructions, `accumulates_in_float32`),
            else in float32. Perplexities and generation run in float32.
        printer: where the results go (progress goes to the "kgpt2" logger).

    Returns:
        A dict with `run_dir`, `perplexity` (`before`/`after` on held-out
        poems), `losses` (per step), `samples` (two texts, from a top-k
        sampler) and `tokens_per_second` (a float, both samples together).

    Example:
    ```python
    import tempfile
    from kgpt2.demo import run

    result = run(steps=20, run_dir=tempfile.mkdtemp(), printer=lambda *a: None)
    print(result["perplexity"])
    ```
    """
    # Importing Keras and its backend takes 5-10 s on a 2-core CPU: say so first.
    logger.info("Starting the demo: importing Keras, KerasHub and TensorFlow")
    if learning_rate is None and preset in RANDOM_PRESETS:
        learning_rate = DEMO_FROM_SCRATCH_LEARNING_RATE
    elif learning_rate is None:
        learning_rate = default_learning_rate(preset)
    run_dir = prepare_run_dir(run_dir)
    try:
        return _fine_tune_and_sample(
            run_dir, preset, steps, batch_size, sequence_length, learning_rate,
            prompt, max_length, mixed_precision, printer,
        )
    finally:
        # Everything in the folder now is this demo's: the next demo
        # replaces exactly these files, and refuses if any other appears.
        write_manifest(run_dir)


def _fine_tune_and_sample(run_dir, preset, steps, batch_size, sequence_length,
                          learning_rate, prompt, max_length, mixed_precision, printer):
    """The demo's body, in the folder `prepare_run_dir` made."""
    # Local: `kgpt2 --help` imports this module and must not load Keras.
    import keras

    from kgpt2.training.compiling import accumulates_in_float32
    from kgpt2.training.compiling import set_precision

    logger.info(f"Loading {preset} (Keras backend: {keras.config.backend()})")
    lm = kgpt2.load(preset, sequence_length=sequence_length)
    # Tokenizing the poems and the first perplexity pass take about 10 s.
    logger.info("Tokenizing the poems and measuring the held-out perplexity before fine-tuning")
    train, held_out = (
        kgpt2.data.poetry(
            sample_poems_path(), to_simplified=True, batch_size=batch_size,
            pack=True, sequence_length=sequence_length, validation_split=0.1,
            subset=subset, tokenizer=lm.preprocessor.tokenizer,
        )
        for subset in ("training", "validation")
    )
    # Four batches are enough for a before/after comparison.
    held_out = held_out.take(4)
    loss_function = _summed_loss_function(lm)
    before = held_out_perplexity(lm, held_out, loss_function)
    logger.info(
        f"Fine-tuning on 360 Tang poems (Simplified, packed), 40 held out, for "
        f"{steps} steps (batch {batch_size} x {sequence_length} tokens)"
    )
    losses = []

    class RecordLoss(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float(logs["loss"]))

    if mixed_precision is None:
        mixed_precision = accumulates_in_float32("mixed_bfloat16")
    recipe = kgpt2.Recipe(steps=steps, learning_rate=learning_rate,
                          warmup_steps=min(10, steps // 10),
                          mixed_precision=mixed_precision)
    kgpt2.finetune(
        lm, train.repeat(), recipe=recipe, run_name="run", checkpoint_dir=run_dir,
        restore_from="fresh", save_every=steps, print_every=max(1, steps // 5),
        sample_every=0, callbacks=[RecordLoss()],
    )
    # A CPU generates faster in float32 (see `set_precision`).
    set_precision(lm, "float32")
    # Samples may be longer than the training windows (the model has the positions).
    lm.preprocessor.sequence_length = max(max_length, sequence_length)
    after = held_out_perplexity(lm, held_out, loss_function)
    printer(f"Held-out perplexity: {before:,.0f} before fine-tuning, {after:,.1f} after.")

    # valid_utf8: a small model often picks byte tokens that cannot form a
    # character (GPT-2 splits most CJK characters into 2-3 tokens);
    # min_new_tokens: it would end the text after a character or two.
    sampler = kgpt2.samplers.get("top_k", k=10, seed=0, valid_utf8=True,
                                 min_new_tokens=DEMO_MIN_NEW_TOKENS)
    # Both samples in one batch: one compiled program, not one per sample.
    # Full length (a fair tokens/s), shown up to the end of the poem. The
    # first call compiles; the second, with the same arguments, is timed.
    options = dict(sampler=sampler, max_length=max_length, nsamples=DEMO_SAMPLES,
                   batch_size=DEMO_SAMPLES, stop_token_ids=None,
                   truncate="<|endoftext|>")
    # The demo times its own calls; generate's per-call speed line would
    # also report the compiling call, and count tokens past the poem's end.
    with _logger_level(logger, logging.WARNING):
        kgpt2.generate(lm, prompt, **options)
        start = time.perf_counter()
        samples = kgpt2.generate(lm, prompt, **options)
        seconds = time.perf_counter() - start
    new_tokens = DEMO_SAMPLES * (max_length - 1 - len(lm.preprocessor.tokenizer(prompt)))
    for number, text in enumerate(samples, 1):
        printer(f"[top_k, sample {number}] {text}")
    speed = new_tokens / seconds
    printer(f"Generation speed: {speed:.0f} tokens/s (top_k, {DEMO_SAMPLES} samples "
            "at once)")
    printer(f"The run is kept in {run_dir}/run: kgpt2.load('{run_dir}/run') loads it; "
            "the next `kgpt2 demo` replaces it.")
    return {
        "run_dir": run_dir / "run",
        "perplexity": {"before": before, "after": after},
        "losses": losses,
        "samples": samples,
        "tokens_per_second": speed,
    }
