"""`kgpt2.generate`: text in, samples out, with gpt-2-simple's options.

Example:
```python
import kgpt2

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
texts = kgpt2.generate(lm, "The quick brown fox", sampler="top_k", seed=1,
                       max_length=24, nsamples=4, batch_size=2)
print(len(texts), texts[0])
```
"""

import logging
import time

import numpy as np
from rich.console import Console
from rich.progress import BarColumn
from rich.progress import MofNCompleteColumn
from rich.progress import Progress
from rich.progress import TimeRemainingColumn

from kgpt2.checks import check_integer
from kgpt2.checks import check_seed
from kgpt2.errors import InputError
from kgpt2.errors import WriteError
from kgpt2.generation.detokenize import decode_tokens
from kgpt2.generation.prompts import prompt_list
from kgpt2.generation.prompts import resolve_max_length
from kgpt2.generation.prompts import resolve_stop_token_ids
from kgpt2.generation.prompts import tokenize_prompts
from kgpt2.generation.sampler_lookup import reseed
from kgpt2.generation.sampler_lookup import resolve_sampler
from kgpt2.generation.samples_file import SamplesNotWrittenError
from kgpt2.generation.samples_file import check_destination
from kgpt2.generation.samples_file import write_samples
from kgpt2.generation.token_ids import generate_token_ids
from kgpt2.presets.memory import FLOAT32_BYTES
from kgpt2.presets.memory import check_fits
from kgpt2.presets.memory import generation_bytes_per_row
from kgpt2.presets.memory import machine_memory_bytes

logger = logging.getLogger("kgpt2")


def _check_memory(lm, batch_size, rows, max_length):
    """Refuse up front a batch that cannot fit in this machine's memory."""
    config = lm.backbone.get_config()
    per_row = generation_bytes_per_row(config, max_length)
    weights = FLOAT32_BYTES * lm.count_params()
    # Every sample's token ids and text are kept until the end.
    outputs = rows * max_length * 2 * FLOAT32_BYTES
    available = machine_memory_bytes() or 0
    fitting = max(0, (available - weights - outputs) // per_row)
    check_fits(
        weights + outputs + batch_size * per_row,
        f"Generating batch_size={batch_size} rows at once of max_length={max_length} "
        f"tokens ({rows} samples in all)",
        f"Use a batch_size of at most {fitting}." if fitting else "Generate fewer samples.",
    )


def _new_tokens(token_ids, prompt_length, stop_ids):
    """A row's generated ids, up to and including its first stop token."""
    new = np.asarray(token_ids[prompt_length:])
    if stop_ids:
        stops = np.flatnonzero(np.isin(new, stop_ids))
        new = new[: stops[0] + 1] if stops.size else new
    return new


def _text(lm, new, stop_ids, prompt, include_prefix, truncate):
    """One sample's text: prompt (optionally), then the generated tokens."""
    if stop_ids and new.size and new[-1] in stop_ids:
        new = new[:-1]  # The stop token ends the sample; it is not text.
    # Byte-level decoding: a character split across tokens is never U+FFFD.
    text = decode_tokens(lm.preprocessor.tokenizer, new.tolist())
    if truncate:
        found = text.find(truncate)
        text = text if found < 0 else text[:found]
    return prompt + text if include_prefix else text


def _progress(total_batches):
    """A rich progress bar over batches (on stderr, so printed samples stay
    clean), or None for a single batch."""
    if total_batches <= 1:
        return None
    return Progress(
        "[progress.description]{task.description}", BarColumn(),
        MofNCompleteColumn(), TimeRemainingColumn(), transient=True,
        console=Console(stderr=True),
    )


def generate(
    lm,
    prompt_or_prompts=None,
    sampler=None,
    max_length=None,
    nsamples=1,
    batch_size=1,
    truncate=None,
    include_prefix=True,
    seed=None,
    stop_token_ids="auto",
    destination_path=None,
    overwrite=False,
    prepend_bos=None,
):
    """Generate `nsamples` texts per prompt, `batch_size` rows at a time.

    The options are gpt-2-simple's (`prefix` is `prompt_or_prompts`,
    `length` is `max_length`, `generate_to_file` is `destination_path`) on
    top of KerasHub's samplers. Generation runs on the compiled fast path
    (`kgpt2.generation.generate_token_ids`): the same tokens as
    `lm.generate` with the same sampler, without recompiling for every
    prompt length or `max_length`.

    Args:
        lm: a `keras_hub.models.GPT2CausalLM` with its preprocessor.
        prompt_or_prompts: a string, a list of strings, or None for
            unconditional samples (from `<|endoftext|>`).
        sampler: a name (`greedy`, `random`, `top_k`, `top_p`, `beam`,
            `contrastive`, see `kgpt2.samplers.get`), a
            `keras_hub.samplers.Sampler`, or None for the sampler `lm` was
            compiled with.
        max_length: tokens per sample, prompt (and its start token)
            included. Defaults to the preprocessor's `sequence_length`; it
            cannot exceed it nor the model's 1024 positions.
        nsamples: samples per prompt.
        batch_size: rows generated at once. The last batch is padded to
            `batch_size` rows (reusing the compiled shape) and the padding
            dropped.
        truncate: cut each sample's generated text at the first occurrence
            of this string (e.g. `"<|endoftext|>"` with `stop_token_ids=None`).
        include_prefix: keep the prompt at the start of each sample.
        seed: reseed the sampler's random stream first, for reproducible
            samples (the sampler object's state changes).
        stop_token_ids: `"auto"` (stop at `<|endoftext|>`, which is left out
            of the text), None (always generate to `max_length`), or ids.
        destination_path: also write the samples to this file, each followed
            by a line of twenty `=` (gpt-2-simple's format). It is checked
            before generating; an existing file is refused unless
            `overwrite=True`.
        overwrite: replace an existing `destination_path`.
        prepend_bos: start each prompt with `<|endoftext|>`. None (default)
            follows the preprocessor's `add_start_token` (True for kgpt2's
            presets and fine-tunes, which train that way); False conditions
            on the prompt alone, as Hugging Face's `generate` does, so an
            imported Hugging Face checkpoint continues a prompt as it does
            there. An empty prompt always starts from `<|endoftext|>`.

    Returns:
        A `list[str]`: for each prompt in order, its `nsamples` samples. How
        many new tokens came in how many seconds (compiling included, if it
        happened) goes to the "kgpt2" logger at INFO level.

    Raises:
        InputError (a ValueError): a prompt that is not a string or not valid
            text, an empty prompt list, `nsamples` or `batch_size` below 1,
            a batch (or all the samples) too big for this machine's memory,
            `max_length` over the limits or too short for a prompt, a negative
            `seed`, stop ids outside the vocabulary, an unknown sampler name or
            option, or an existing `destination_path` without `overwrite`.
        WriteError (an OSError): `destination_path` cannot be written; when
            that shows only after generating, a `SamplesNotWrittenError`
            whose `texts` holds the samples.
    """
    prompts = prompt_list(prompt_or_prompts)
    check_integer(None, "nsamples", nsamples, minimum=1)
    check_integer(None, "batch_size", batch_size, minimum=1)
    check_seed("kgpt2.generate", seed)
    if destination_path is not None:
        # Before generating: a bad destination should cost no work.
        check_destination(destination_path, overwrite)
    if lm.preprocessor is None:
        raise InputError(
            "kgpt2.generate needs the model's preprocessor (for the tokenizer); "
            "use kgpt2.generation.generate_token_ids with token ids instead."
        )
    max_length = resolve_max_length(lm, max_length)
    sampler = resolve_sampler(lm, sampler)
    if seed is not None:
        reseed(sampler, seed)
    stop_ids = resolve_stop_token_ids(lm, stop_token_ids)
    _check_memory(lm, batch_size, len(prompts) * nsamples, max_length)
    token_rows = tokenize_prompts(lm, prompts, max_length, prepend_bos)

    # One row per (prompt, sample), generated batch_size rows at a time.
    jobs = [p for p in range(len(prompts)) for _ in range(nsamples)]
    batches = [jobs[i : i + batch_size] for i in range(0, len(jobs), batch_size)]
    texts, new_tokens, seconds = [], 0, 0.0
    progress = _progress(len(batches))
    task = progress.add_task("generating", total=len(batches)) if progress else None
    if progress:
        progress.start()
    try:
        for batch in batches:
            padded = batch + [batch[-1]] * (batch_size - len(batch))
            lengths = np.array([len(token_rows[p]) for p in padded])
            token_ids = np.zeros((batch_size, lengths.max()), "int32")
            for row, p in enumerate(padded):
                token_ids[row, : lengths[row]] = token_rows[p]
            start = time.perf_counter()
            output = generate_token_ids(
                lm, token_ids, max_length, sampler=sampler,
                stop_token_ids=stop_ids, prompt_lengths=lengths,
            )
            seconds += time.perf_counter() - start
            for row, p in enumerate(batch):
                new = _new_tokens(output[row], lengths[row], stop_ids)
                new_tokens += new.size
                texts.append(
                    _text(lm, new, stop_ids, prompts[p], include_prefix, truncate)
                )
            if progress:
                progress.advance(task)
    finally:
        if progress:
            progress.stop()
    logger.info(
        "%d new tokens in %.2f s: %.1f tokens/s",
        new_tokens, seconds, new_tokens / seconds if seconds else 0.0,
    )
    if destination_path is not None:
        try:
            write_samples(texts, destination_path, overwrite=overwrite)
        except (InputError, WriteError) as error:
            raise SamplesNotWrittenError(texts, str(error)) from error
    return texts
