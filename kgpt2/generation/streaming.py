"""`stream_text`: text pieces as they are generated, on the batching engine.

The same engine serves `kgpt2 serve` and `kgpt2 generate --stream`; here it
decodes one row. Pieces never split a character (see `detokenize`).

Example:
```python
import kgpt2
from kgpt2.generation import stream_text

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
for piece in stream_text(lm, "The quick brown fox", sampler="greedy", max_length=16):
    print(piece, end="", flush=True)
```
"""

import time

from kgpt2.errors import Error
from kgpt2.errors import InputError
from kgpt2.generation.batching_engine import BatchingEngine
from kgpt2.generation.prompts import prompt_list
from kgpt2.generation.prompts import resolve_max_length
from kgpt2.generation.prompts import resolve_stop_token_ids
from kgpt2.generation.prompts import tokenize_prompts
from kgpt2.generation.row_sampling import SamplingOptions


class TextStream:
    """An iterator of text pieces; after it ends, `new_tokens`, `seconds`,
    `tokens_per_second` and `finish_reason` say how it went.

    Closing it early (or breaking out of a `for` loop over it) cancels the
    generation.
    """

    def __init__(self, engine, job):
        self._engine = engine
        self._job = job
        self._events = job.events()
        self._started = time.perf_counter()
        self.seconds = 0.0
        self.finish_reason = None

    @property
    def new_tokens(self):
        return self._job.completion_tokens[0]

    @property
    def tokens_per_second(self):
        return self.new_tokens / self.seconds if self.seconds else 0.0

    def __iter__(self):
        return self

    def __next__(self):
        if self.finish_reason is not None:
            raise StopIteration
        try:
            event = next(self._events)
        except StopIteration:
            self.close()
            raise
        if event.error:
            self.close()
            raise Error(f"generation failed: {event.error}")
        if event.finish_reason is not None:
            self.finish_reason = event.finish_reason
            self.close()
        return event.text

    def close(self):
        """Stop generating (if still running) and release the engine."""
        if self._engine is None:
            return
        self.seconds = time.perf_counter() - self._started
        self._job.cancel()
        self._engine.close()
        self._engine = None

    def __del__(self):
        self.close()


def stream_text(lm, prompt=None, sampler="top_k", max_length=None, seed=None,
                stop_token_ids="auto", prepend_bos=None, **options):
    """Generate one continuation of `prompt`, yielding text as it comes.

    Args:
        lm: a `GPT2CausalLM` with its preprocessor.
        prompt: a string, or None for unconditional text (from `<|endoftext|>`).
        sampler: `greedy`, `random`, `top_k` or `top_p` (the samplers a
            continuous batch can mix).
        max_length: tokens in all, prompt (and its start token) included;
            default the preprocessor's `sequence_length`.
        seed: seed of the row's random draws.
        stop_token_ids: `"auto"` (stop at `<|endoftext|>`), None, or ids.
        prepend_bos: start the prompt with `<|endoftext|>`, as
            `kgpt2.generate`'s option (None: the preprocessor's convention).
        **options: the sampler's options (`k`, `p`, `temperature`, `min_p`,
            `repetition_penalty`, `no_repeat_ngram_size`, `presence_penalty`,
            `frequency_penalty`, `logit_bias`).

    Returns:
        A `TextStream` (iterate it for the text pieces).
    """
    if prompt is not None and not isinstance(prompt, str):
        raise InputError(
            f"prompt must be a string or None, got {type(prompt).__name__}: {prompt!r}."
        )
    sampling = SamplingOptions.from_sampler(sampler, seed=seed, **options)
    max_length = resolve_max_length(lm, max_length)
    ids = tokenize_prompts(lm, prompt_list(prompt), max_length, prepend_bos)[0]
    stops = resolve_stop_token_ids(lm, stop_token_ids) or ()
    engine = BatchingEngine(lm, max_batch_size=1, max_queue=0, context_length=max_length)
    job = engine.submit(ids, max_length - len(ids), sampling, stop_token_ids=stops)
    return TextStream(engine, job)
