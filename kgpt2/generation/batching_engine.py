"""Continuous batching: many requests share one compiled decode step.

A `BatchingEngine` owns a model, a key/value cache and a thread that loops:
admit waiting requests into free rows, then run one decode step for every
busy row. A request that arrives while others decode joins at the next
step, and a row that finishes frees at once. Each row is at its own
position (`cached_forward.forward_rows`) and has its own sampling settings
(`row_sampling`), so requests with different settings share a step.

The step runs as many rows as the load needs: the cache has a row count
from `row_counts(max_batch_size)` (1, 2, 4, ...), the smallest that holds
the busy rows, which are kept packed at its front. One client decodes at
batch-1 speed; sixteen share a 16-row step. A short prompt that joins
busy rows is fed through the decode steps one token at a time, so it
joins without stalling them; a longer one, or one alone, is run through
the model on its own first. The cache is as long as the longest busy request needs (prompt plus
`max_new_tokens`, rounded up), so the compiled shapes stay few, and
`warm_up` compiles the common ones before the first request. Greedy rows
pick the same tokens as `kgpt2.generate` with `sampler="greedy"`.

Example:
```python
import kgpt2
from kgpt2.generation.batching_engine import BatchingEngine
from kgpt2.generation.row_sampling import SamplingOptions

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
engine = BatchingEngine(lm, max_batch_size=4)
job = engine.submit([50256, 464], max_new_tokens=8,
                    options=SamplingOptions(temperature=0.0))
print(job.result()[0]["finish_reason"], engine.stats()["steps"] >= 8)  # length True
engine.close()
```
"""

import collections
import dataclasses
import queue
import threading
import time
import weakref

import keras
import numpy as np
from keras import ops

from kgpt2.checks import check_integer
from kgpt2.compilation_cache import enable_compilation_cache
from kgpt2.errors import Error
from kgpt2.errors import InputError
from kgpt2.generation.buckets import bucket_length
from kgpt2.generation.cached_forward import empty_cache
from kgpt2.generation.cached_forward import forward_rows
from kgpt2.generation.cached_forward import forward_with_cache
from kgpt2.generation.detokenize import IncrementalDecoder
from kgpt2.generation.row_sampling import SamplingOptions
from kgpt2.generation.row_sampling import draw_rows
from kgpt2.generation.row_sampling import needed_features
from kgpt2.generation.row_sampling import process_rows
from kgpt2.generation.row_sampling import token_logprobs
from kgpt2.generation.stop_text import StopText
from kgpt2.generation.token_ids import model_max_length
from kgpt2.heap import return_freed_memory

# Rows a step may run: steps run only as many as the busy rows need, so a
# larger limit costs nothing while the load is light.
DEFAULT_MAX_BATCH_SIZE = 16
# Prompts of at most this many tokens (before their last) are fed through
# the decode steps: a 16-row step costs about what running one short prompt
# alone does, and the rows already decoding don't wait for it.
STEP_FED_PROMPT_TOKENS = 8
# A row decoding alone runs this many steps per call: the host's part of a
# call (argument transfer and dispatch) is paid once for all of them
# (docs/benchmarks.md, "Serving under load").
STEPS_PER_CALL_ALONE = 4
# Steps a smaller row count must suffice for before the cache shrinks to it
# (each change copies the cache).
SHRINK_AFTER_STEPS = 8
# The shortest cache. Attention over 128 slots costs little beside the
# weights a step reads, and one length for every request of up to 128
# tokens means one compiled program per row count (each one holds memory).
MIN_CACHE_LENGTH = 128
# The cache lengths and samplings `warm_up` compiles by default: requests of
# up to 128 tokens, greedy and sampled.
WARM_UP_LENGTHS = (MIN_CACHE_LENGTH,)
WARM_UP_TEMPERATURES = (0.0, 1.0)


def cache_length(needed, context_length):
    """The cache length for `needed` slots: a power of two, at least `MIN_CACHE_LENGTH`.

    Few lengths mean few compiled programs; attention reads at most twice
    the slots it needs.
    """
    length = MIN_CACHE_LENGTH
    while length < needed:
        length *= 2
    return min(length, max(bucket_length(context_length), needed))


def row_counts(max_batch_size):
    """The row counts a decode step runs at: powers of two, then `max_batch_size`.

    Example:
    ```python
    from kgpt2.generation.batching_engine import row_counts

    print(row_counts(16), row_counts(6))  # (1, 2, 4, 8, 16) (1, 2, 4, 6)
    ```
    """
    counts = [1]
    while counts[-1] * 2 < max_batch_size:
        counts.append(counts[-1] * 2)
    if counts[-1] != max_batch_size:
        counts.append(max_batch_size)
    return tuple(counts)


def _row_logprobs(outputs, slot, row):
    """A row's `StreamEvent.logprobs` from a step's logprob outputs."""
    asked = row.job.options.logprobs
    if asked is None or not outputs:
        return ()
    chosen, top_ids, top_values = outputs
    alternatives = tuple(
        (int(token), float(value))
        for token, value in zip(top_ids[slot, :asked], top_values[slot, :asked])
    )
    return ((float(chosen[slot]), alternatives),)


def _settings(options, starts, stop_ids):
    """A step's settings arguments: the rows' stacked `options` (with their
    `starts`) as device arrays, and the step's static features."""
    stacked = SamplingOptions.stack(options)
    stacked["start"] = starts
    return ({name: ops.convert_to_tensor(value) for name, value in stacked.items()},
            needed_features(options, stop_ids))


class QueueFullError(Error, RuntimeError):
    """The engine's waiting queue is full: retry later."""


class EngineClosedError(Error, RuntimeError):
    """The engine is shutting down and takes no new requests."""


@dataclasses.dataclass(frozen=True)
class StreamEvent:
    """What a job's listener receives, one per text piece or end of a choice.

    Attributes:
        index: the choice (0 .. n - 1).
        text: new text (may be "").
        token_ids: the tokens this event covers.
        finish_reason: None while generating, then `"stop"` or `"length"`;
            `"error"` when the job failed or was cancelled (see `error`).
        error: the message of a failure, else None.
        logprobs: with `SamplingOptions.logprobs` set, one
            `(logprob, ((token id, logprob), ...))` per token of
            `token_ids`: its log-probability and the most likely
            alternatives (see `row_sampling` for which distribution).
    """

    index: int
    text: str = ""
    token_ids: tuple = ()
    finish_reason: str = None
    error: str = None
    logprobs: tuple = ()


class Job:
    """A submitted request: `n` choices that decode in their own rows.

    Events go to `listener` (called on the engine's thread; it must return
    quickly) or, without one, to a queue that `events()` and `result()` read.
    """

    def __init__(self, prompt_ids, max_new_tokens, options, n, stop_token_ids,
                 stop, listener):
        self.prompt_ids = [int(i) for i in prompt_ids]
        self.max_new_tokens = int(max_new_tokens)
        self.options = options
        self.n = int(n)
        self.stop_token_ids = tuple(int(i) for i in stop_token_ids or ())
        self.stop = tuple(stop or ())
        self.completion_tokens = [0] * self.n
        self.cancelled = threading.Event()
        self.submitted = time.perf_counter()
        self._queue = None if listener else queue.Queue()
        self._listener = listener or self._queue.put

    @property
    def prompt_tokens(self):
        return len(self.prompt_ids)

    def emit(self, event):
        try:
            self._listener(event)
        except Exception:  # A broken listener must not stop other rows.
            self.cancelled.set()

    def cancel(self):
        """Stop generating; the job's rows free before the next step."""
        self.cancelled.set()

    def events(self, timeout=None):
        """Yield events until every choice has finished (no-listener jobs)."""
        finished = 0
        while finished < self.n:
            event = self._queue.get(timeout=timeout)
            finished += event.finish_reason is not None
            yield event

    def result(self, timeout=None):
        """Wait for every choice; return `[{"text", "finish_reason", "token_ids"}]`."""
        choices = [{"text": "", "finish_reason": None, "token_ids": []} for _ in range(self.n)]
        for event in self.events(timeout=timeout):
            choice = choices[event.index]
            choice["text"] += event.text
            choice["token_ids"] += list(event.token_ids)
            if event.error:
                raise Error(event.error)
            choice["finish_reason"] = event.finish_reason or choice["finish_reason"]
        return choices


class _Row:
    """One busy row: a job's choice, its decoder, stop scan and random stream."""

    def __init__(self, job, index, tokenizer):
        self.job = job
        self.index = index
        self.decoder = IncrementalDecoder(tokenizer)
        self.stop_text = StopText(job.stop)
        seed = job.options.seed
        entropy = None if seed is None else [seed, index]
        self.random = np.random.default_rng(entropy)
        self.generated = 0
        # Prompt tokens still to feed through the decode steps.
        self.prompt = collections.deque()


def _compiler(lm_ref):
    """Return `compile(fn, static_argnums, donate_argnums)` for the model's backend.

    On JAX the function is jitted with the model's weights as arguments (as
    `compiled.py` does), so training or reloading weights needs no
    recompile; elsewhere it runs eagerly. The list of variables is taken
    once (walking the model's layers for it every step was a measurable
    part of a batch-1 step): a model
    whose variables change (e.g. `enable_lora`) needs a new engine model.
    """
    lm = lm_ref()
    if keras.config.backend() != "jax" or lm.run_eagerly:
        return lambda fn, static_argnums=(), donate_argnums=(): fn
    # Only the JAX backend compiles here: other backends never load JAX.
    import jax

    enable_compilation_cache()
    variables = lm.trainable_variables + lm.non_trainable_variables

    def compile_function(fn, static_argnums=(), donate_argnums=()):
        """Argument numbers count from `fn`'s first argument."""

        def with_weights(weights, *args):
            with keras.StatelessScope(state_mapping=zip(variables, weights)):
                return fn(*args)

        compiled = jax.jit(
            with_weights,
            static_argnums=tuple(n + 1 for n in static_argnums),
            donate_argnums=tuple(n + 1 for n in donate_argnums),
        )

        def run(*args):
            return compiled([variable.value for variable in variables], *args)

        run.programs_compiled = compiled._cache_size
        return run

    return compile_function


# lm -> _Programs; weak, and the programs hold the model only weakly, so
# dropping a model frees its compiled programs.
_PROGRAMS = weakref.WeakKeyDictionary()


class _Programs:
    """The engine's compiled functions: admit a prompt, copy a row, decode a step.

    One set per model (see `programs_for`), shared by all its engines.
    """

    def __init__(self, lm):
        backbone = lm.backbone
        compile_function = _compiler(weakref.ref(lm))

        def admit(cache, token_ids, row):
            """Run a prompt in row `row` (slots `[0, width)`) of `cache`."""
            rows_cache = empty_cache(backbone, 1, token_ids.shape[1])
            _, rows_cache = forward_with_cache(backbone, token_ids, rows_cache, 0, 0)
            return tuple(
                (ops.slice_update(key, (row, 0, 0, 0), row_key),
                 ops.slice_update(value, (row, 0, 0, 0), row_value))
                for (key, value), (row_key, row_value) in zip(cache, rows_cache)
            )

        def copy_row(cache, source, target):
            """Give row `target` row `source`'s cache (for `n > 1` choices)."""
            new = []
            for key, value in cache:
                shape = (1, *key.shape[1:])
                new.append(tuple(
                    ops.slice_update(tensor, (target, 0, 0, 0),
                                     ops.slice(tensor, (source, 0, 0, 0), shape))
                    for tensor in (key, value)
                ))
            return tuple(new)

        def step(cache, token_ids, positions, history, options, features, uniforms):
            hidden, cache = forward_rows(backbone, token_ids, cache, positions)
            logits = backbone.token_embedding(hidden, reverse=True)
            logits = process_rows(logits, history, positions + 1, options,
                                  options["start"], features)
            tokens = draw_rows(logits, options, uniforms, features)
            if features.logprobs is None:
                return (tokens,), cache
            return (tokens, *token_logprobs(logits, tokens, features.logprobs)), cache

        def steps(cache, token_ids, positions, history, options, features, uniforms):
            """`len(uniforms)` steps in one call, each row taking its own tokens."""
            rows = ops.arange(ops.shape(token_ids)[0], dtype="int32")

            def body(k, carry):
                cache, token_ids, positions, history, tokens = carry
                (new,), cache = step(cache, token_ids, positions, history, options,
                                     features, uniforms[k])
                history = ops.scatter_update(
                    history, ops.stack([rows, positions + 1], axis=1), new)
                tokens = ops.slice_update(tokens, (k, 0), new[None])
                return cache, new, positions + 1, history, tokens

            tokens = ops.zeros(ops.shape(uniforms), "int32")
            carry = (cache, token_ids, positions, history, tokens)
            cache, _, _, _, tokens = ops.fori_loop(0, ops.shape(uniforms)[0], body, carry)
            return tokens, cache

        def score(token_ids, top):
            """Log-probabilities of a prompt's tokens given the ones before them."""
            hidden = backbone({
                "token_ids": token_ids,
                "padding_mask": ops.ones_like(token_ids, dtype="bool"),
            })
            logits = ops.cast(backbone.token_embedding(hidden, reverse=True), "float32")
            logprobs = ops.log_softmax(logits[0, :-1], axis=-1)
            chosen = ops.take_along_axis(logprobs, token_ids[0, 1:, None], axis=1)[:, 0]
            top_values, top_ids = ops.top_k(logprobs, max(top, 1))
            return chosen, top_ids[:, :top], top_values[:, :top]

        # The cache is donated: XLA updates it in place instead of copying it.
        self.admit = compile_function(admit, donate_argnums=(0,))
        self.copy_row = compile_function(copy_row, donate_argnums=(0,))
        self.step = compile_function(step, static_argnums=(5,), donate_argnums=(0,))
        self.steps = compile_function(steps, static_argnums=(5,), donate_argnums=(0,))
        self.score = compile_function(score, static_argnums=(1,))


def programs_for(lm):
    """The compiled engine programs of `lm`, made once per model."""
    if lm not in _PROGRAMS:
        _PROGRAMS[lm] = _Programs(lm)
    return _PROGRAMS[lm]


class BatchingEngine:
    """Decode many requests at once, each joining and leaving between steps.

    Args:
        lm: a `GPT2CausalLM` with its preprocessor (for the tokenizer).
        max_batch_size: the most rows decoded per step; a step runs only
            as many as the busy rows need (see `row_counts`).
        max_queue: requests that may wait for free rows; `submit` raises
            `QueueFullError` beyond it.
        context_length: the most tokens (prompt plus new) per row; default
            the preprocessor's `sequence_length`, at most the model's.
    """

    def __init__(self, lm, max_batch_size=DEFAULT_MAX_BATCH_SIZE, max_queue=64, context_length=None):
        check_integer("BatchingEngine", "max_batch_size", max_batch_size, minimum=1)
        check_integer("BatchingEngine", "max_queue", max_queue, minimum=0)
        limit = model_max_length(lm)
        if context_length is None and lm.preprocessor is not None:
            context_length = lm.preprocessor.sequence_length
        self.context_length = min(int(context_length or limit), limit)
        self.lm = lm
        self.tokenizer = lm.preprocessor.tokenizer if lm.preprocessor else None
        self.max_batch_size = int(max_batch_size)
        self.max_queue = int(max_queue)
        self.row_counts = row_counts(self.max_batch_size)
        self._programs = programs_for(lm)
        self._waiting = collections.deque()
        self._condition = threading.Condition()
        self._closing = False
        self._cutting = False
        self._thread = None
        self._cache = None
        self._set_rows(self.row_counts[0], length=0)
        self._smaller_steps = 0
        self._settings_key = None
        self._rows_per_step = collections.Counter()
        self._step_rows = collections.Counter()
        self._steps = 0
        self._tokens = 0
        self._recent_rows = collections.deque(maxlen=256)

    def _set_rows(self, count, length):
        """Empty host-side row state for `count` rows of `length` slots."""
        self._rows = [None] * count
        self._token_ids = np.zeros(count, "int32")
        self._positions = np.zeros(count, "int32")
        self._history = np.zeros((count, length), "int32")
        self._starts = np.zeros(count, "int32")

    # ---- public API -----------------------------------------------------

    def submit(self, prompt_ids, max_new_tokens, options=None, n=1,
               stop_token_ids=None, stop=(), listener=None):
        """Queue a request; return its `Job` (events arrive as it decodes).

        Args:
            prompt_ids: the prompt's token ids (at least one).
            max_new_tokens: int >= 1; prompt plus new tokens must fit in
                `context_length`.
            options: `SamplingOptions` (default: sampling at temperature 1).
            n: choices to generate, each in its own row (<= max_batch_size).
            stop_token_ids: ids that end a choice (not shown as text);
                default the tokenizer's end token.
            stop: strings that end a choice (cut from its text).
            listener: called with each `StreamEvent` on the engine thread.

        Raises:
            InputError: a request that can never run.
            QueueFullError: `max_queue` requests are already waiting.
            EngineClosedError: the engine is shutting down.
        """
        options = options or SamplingOptions()
        if stop_token_ids is None and self.tokenizer is not None:
            stop_token_ids = (self.tokenizer.end_token_id,)
        if len(prompt_ids) < 1:
            raise InputError("prompt_ids must hold at least one token.")
        if not 1 <= n <= self.max_batch_size:
            raise InputError(f"n must be between 1 and {self.max_batch_size}, got {n}.")
        if max_new_tokens < 1 or len(prompt_ids) + max_new_tokens > self.context_length:
            raise InputError(
                f"prompt ({len(prompt_ids)} tokens) plus max_new_tokens "
                f"({max_new_tokens}) must fit in the context of "
                f"{self.context_length} tokens, with max_new_tokens >= 1."
            )
        job = Job(prompt_ids, max_new_tokens, options, n, stop_token_ids, stop, listener)
        with self._condition:
            if self._closing:
                raise EngineClosedError("the engine is shutting down.")
            if len(self._waiting) >= self.max_queue + self._free_rows():
                raise QueueFullError(
                    f"{len(self._waiting)} requests are already waiting "
                    f"(max_queue={self.max_queue}); retry later."
                )
            self._waiting.append(job)
            self._condition.notify_all()
        self._start()
        return job

    def prompt_logprobs(self, prompt_ids, top=0):
        """Each prompt token's log-probability given the tokens before it.

        Returns one `(logprob, ((token id, logprob), ...))` per token of
        `prompt_ids[1:]`, with the `top` most likely alternatives, from the
        model's plain log-softmax (the logits rules concern generated
        tokens). Safe to call from any thread; it does not take a row.
        """
        check_integer("prompt_logprobs", "top", top, minimum=0)
        if len(prompt_ids) < 2:
            return []
        width = bucket_length(len(prompt_ids))
        token_ids = np.zeros((1, width), "int32")
        token_ids[0, : len(prompt_ids)] = prompt_ids
        chosen, top_ids, top_values = (
            np.asarray(output) for output in self._programs.score(token_ids, int(top))
        )
        return [
            (float(chosen[i]), tuple(zip(top_ids[i].tolist(), top_values[i].tolist())))
            for i in range(len(prompt_ids) - 1)
        ]

    def warm_up(self, lengths=WARM_UP_LENGTHS, temperatures=WARM_UP_TEMPERATURES):
        """Compile the decode step for every row count, cache length and sampling.

        Call it before taking requests (`kgpt2 serve` does), so none waits
        for a compile; with JAX's compilation cache, a later start reads
        the programs back. `lengths` are request lengths (prompt plus new
        tokens), each compiled at the cache length it needs.

        Returns:
            The seconds it took.

        Example:
        ```python
        import kgpt2
        from kgpt2.generation.batching_engine import BatchingEngine

        engine = BatchingEngine(kgpt2.load("gpt2_tiny_random", sequence_length=64),
                                max_batch_size=2)
        print(engine.warm_up(lengths=(64,)) > 0)  # True
        engine.close()
        ```
        """
        started = time.perf_counter()
        stop_ids = (self.tokenizer.end_token_id,) if self.tokenizer is not None else ()
        context = self.context_length
        for length in sorted({cache_length(min(n, context), context) for n in lengths}):
            for count in self.row_counts:
                cache = empty_cache(self.lm.backbone, count, length)
                for temperature in temperatures:
                    options = [SamplingOptions(temperature=temperature)] * count
                    arguments = (np.zeros(count, "int32"), np.zeros(count, "int32"),
                                 np.zeros((count, length), "int32"),
                                 *_settings(options, np.ones(count, "int32"), stop_ids))
                    outputs, cache = self._programs.step(
                        cache, *arguments, np.zeros(count, "float32"))
                    if count == 1:
                        outputs, cache = self._programs.steps(
                            cache, *arguments,
                            np.zeros((STEPS_PER_CALL_ALONE, count), "float32"))
                if count > 1:
                    cache = self._programs.copy_row(cache, np.int32(1), np.int32(0))
                else:  # a short prompt alone in the engine (see `_admit`)
                    width = bucket_length(STEP_FED_PROMPT_TOKENS)
                    cache = self._programs.admit(cache, np.zeros((1, width), "int32"),
                                                 np.int32(0))
                np.asarray(cache[0][0][0, 0, 0, 0])  # wait for the last program
                del cache, outputs
                # The compiler's memory, freed, would otherwise stay resident.
                return_freed_memory()
        return time.perf_counter() - started

    def stats(self):
        """Counters: steps, tokens, busy rows, two histograms per step (the
        busy rows, `rows_per_step`, and the rows computed, `step_rows`), and
        how many shapes of the decode step are compiled (`step_programs`)."""
        with self._condition:
            return {
                "steps": self._steps,
                "tokens": self._tokens,
                "busy_rows": sum(row is not None for row in self._rows),
                "waiting": len(self._waiting),
                "max_batch_size": self.max_batch_size,
                "cache_rows": len(self._rows),
                "rows_per_step": dict(sorted(self._rows_per_step.items())),
                "step_rows": dict(sorted(self._step_rows.items())),
                "step_programs": sum(getattr(program, "programs_compiled", int)()
                                     for program in (self._programs.step, self._programs.steps)),
                "max_rows_per_step": max(self._rows_per_step, default=0),
                "recent_rows_per_step": list(self._recent_rows),
            }

    def close(self, drain_seconds=0.0):
        """Take no new requests; let busy rows finish for up to `drain_seconds`,
        then cut what is left short and stop the thread.

        A cut choice ends like one that reached its token limit: its text so
        far, then an event with `finish_reason="length"`, so a stream always
        gets its last event. Calling `close` again is harmless.
        """
        with self._condition:
            self._closing = True
            waiting, self._waiting = list(self._waiting), collections.deque()
            self._condition.notify_all()
        for job in waiting:
            self._fail(job, "the server is shutting down.")
        deadline = time.monotonic() + drain_seconds
        while self._busy() and time.monotonic() < deadline:
            time.sleep(0.02)
        with self._condition:
            self._cutting = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)

    # ---- engine thread --------------------------------------------------

    def _start(self):
        with self._condition:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="kgpt2-batching", daemon=True
                )
                self._thread.start()

    def _busy_count(self):
        return sum(row is not None for row in self._rows)

    def _free_rows(self):
        return self.max_batch_size - self._busy_count()

    def _busy(self):
        return any(row is not None for row in self._rows)

    def _loop(self):
        while True:
            with self._condition:
                while not self._waiting and not self._busy() and not self._closing:
                    self._condition.wait(timeout=1.0)
                if self._closing and not self._busy():
                    return
                admitted = self._take_admissible()
            try:
                self._release_cancelled()
                if self._cutting:
                    self._cut_rows()
                # A request alone in the engine runs its prompt at once: no
                # row waits for it.
                alone = len(admitted) == 1 and not self._busy()
                if admitted:
                    # Grow the cache once for all of them.
                    self._fit_cache(extra_rows=sum(job.n for job in admitted),
                                    extra_jobs=admitted)
                for job in admitted:
                    self._admit(job, step_fed=not alone)
                if self._busy():
                    self._step()
            except Exception as error:  # Fail the rows, keep serving others.
                self._fail_all(f"{type(error).__name__}: {error}")

    def _take_admissible(self):
        """Pop waiting jobs, in order, while their rows fit."""
        for job in [job for job in self._waiting if job.cancelled.is_set()]:
            self._waiting.remove(job)
            self._fail(job, "cancelled")
        admitted = []
        free = self._free_rows()
        while self._waiting and (self._waiting[0].n <= free):
            job = self._waiting.popleft()
            admitted.append(job)
            free -= job.n
        return admitted

    def _fail(self, job, message):
        for index in range(job.n):
            job.emit(StreamEvent(index, finish_reason="error", error=message))

    def _fail_all(self, message):
        jobs = {id(row.job): row.job for row in self._rows if row is not None}
        self._cache = None
        self._set_rows(self.row_counts[0], length=0)
        for job in jobs.values():
            self._fail(job, message)

    def _release_cancelled(self):
        for slot, row in enumerate(self._rows):
            if row is not None and row.job.cancelled.is_set():
                self._rows[slot] = None
                row.job.emit(StreamEvent(row.index, finish_reason="error",
                                         error="cancelled"))

    def _cut_rows(self):
        """End every busy row now, as if it had reached its token limit."""
        for slot, row in enumerate(self._rows):
            if row is not None:
                self._rows[slot] = None
                text = row.stop_text.feed(row.decoder.flush())[0] + row.stop_text.flush()
                row.job.emit(StreamEvent(row.index, text, (), "length"))

    def _needed_length(self, extra_jobs=()):
        lengths = [len(job.prompt_ids) + job.max_new_tokens for job in extra_jobs]
        lengths += [
            len(row.job.prompt_ids) + row.job.max_new_tokens
            for row in self._rows if row is not None
        ]
        return cache_length(max(lengths), self.context_length)

    def _pack(self):
        """Move busy rows into the free slots before them, so they fill the front."""
        slots = len(self._rows)
        while True:
            free = next((slot for slot in range(slots) if self._rows[slot] is None), None)
            last = max((slot for slot in range(slots) if self._rows[slot] is not None),
                       default=None)
            if free is None or last is None or last < free:
                return
            self._cache = self._programs.copy_row(self._cache, np.int32(last), np.int32(free))
            for array in (self._token_ids, self._positions, self._starts, self._history):
                array[free] = array[last]
            self._rows[free], self._rows[last] = self._rows[last], None

    def _fit_cache(self, extra_rows=0, extra_jobs=()):
        """Give the cache the rows and slots the busy rows (and `extra_jobs`) need.

        It grows at once; it shrinks to fewer rows once `SHRINK_AFTER_STEPS`
        steps in a row needed fewer (at once when no row is busy), and to
        fewer slots when half of them would do.
        """
        busy = self._busy_count()
        needed = busy + extra_rows
        rows = next(count for count in self.row_counts if count >= needed)
        current_rows = len(self._rows)
        if rows < current_rows and busy:
            self._smaller_steps += 1
            if self._smaller_steps < SHRINK_AFTER_STEPS:
                rows = current_rows
        else:
            self._smaller_steps = 0
        if rows != current_rows:
            self._smaller_steps = 0
        length = self._needed_length(extra_jobs) if needed else self._history.shape[1]
        current = self._history.shape[1]
        if not (length > current or length * 2 <= current):
            length = current
        if self._cache is None or rows != current_rows or length != current:
            self._reshape_cache(rows, length)

    def _reshape_cache(self, rows, length):
        """Make the cache `rows` x `length` slots, keeping the busy rows (packed first)."""
        self._pack()
        state = (self._rows, self._token_ids, self._positions, self._history, self._starts)
        old_rows, old_length = self._history.shape
        self._set_rows(rows, length)
        keep, kept_length = min(rows, old_rows), min(length, old_length)
        self._rows[:keep] = state[0][:keep]
        for new, old in zip((self._token_ids, self._positions, self._starts),
                            (state[1], state[2], state[4])):
            new[:keep] = old[:keep]
        self._history[:keep, :kept_length] = state[3][:keep, :kept_length]
        if self._cache is None or not any(self._rows):
            self._cache = empty_cache(self.lm.backbone, rows, length)
            return
        pad = [(0, max(rows - old_rows, 0)), (0, 0), (0, 0), (0, max(length - old_length, 0))]
        self._cache = tuple(
            tuple(ops.pad(tensor[:keep, ..., :kept_length], pad) for tensor in pair)
            for pair in self._cache
        )

    def _admit(self, job, step_fed=True):
        """Give `job` free rows; run its prompt (all but its last token) at once.

        With `step_fed`, a prompt of up to `STEP_FED_PROMPT_TOKENS` tokens
        before its last is fed through the decode steps instead, one token
        per step, so the rows already decoding don't wait for it.
        """
        self._fit_cache(extra_rows=job.n, extra_jobs=[job])
        self._pack()
        slots = [slot for slot, row in enumerate(self._rows) if row is None][: job.n]
        prompt = job.prompt_ids
        step_fed = step_fed and len(prompt) - 1 <= STEP_FED_PROMPT_TOKENS
        step_fed = step_fed or len(prompt) == 1
        if not step_fed:
            width = bucket_length(len(prompt) - 1)
            token_ids = np.zeros((1, width), "int32")
            token_ids[0, : len(prompt) - 1] = prompt[:-1]
            self._cache = self._programs.admit(self._cache, token_ids, np.int32(slots[0]))
            for slot in slots[1:]:
                self._cache = self._programs.copy_row(
                    self._cache, np.int32(slots[0]), np.int32(slot)
                )
        for index, slot in enumerate(slots):
            row = _Row(job, index, self.tokenizer)
            first = 0 if step_fed else len(prompt) - 1
            row.prompt.extend(prompt[first + 1:])
            self._rows[slot] = row
            self._token_ids[slot] = prompt[first]
            self._positions[slot] = first
            self._history[slot, :] = 0
            self._history[slot, : len(prompt)] = prompt
            self._starts[slot] = len(prompt)

    def _steps_per_call(self):
        """`STEPS_PER_CALL_ALONE` for a lone row that has that many tokens
        left and asks no logprobs, while nobody waits; else 1."""
        row = self._rows[0] if len(self._rows) == 1 else None
        if row is None or row.prompt or self._waiting or row.job.options.logprobs is not None:
            return 1
        left = min(row.job.max_new_tokens - row.generated,
                   self.context_length - 1 - int(self._positions[0]))
        return STEPS_PER_CALL_ALONE if left >= STEPS_PER_CALL_ALONE else 1

    def _step(self):
        self._fit_cache()
        calls = self._steps_per_call()
        if calls > 1:
            return self._run_steps(calls)
        busy = [slot for slot, row in enumerate(self._rows) if row is not None]
        options = [row.job.options if row else None for row in self._rows]
        uniforms = np.array(
            [row.random.random() if row and not row.prompt else 0.0 for row in self._rows],
            "float32",
        )
        positions = np.where([row is not None for row in self._rows], self._positions, 0)
        outputs, self._cache = self._programs.step(
            self._cache,
            self._token_ids,
            positions.astype("int32"),
            self._history,
            *self._step_settings(options),
            uniforms,
        )
        tokens, *logprobs = (np.asarray(output) for output in outputs)
        self._count_steps(1, len(busy), sum(not self._rows[slot].prompt for slot in busy))
        for slot in busy:
            row = self._rows[slot]
            if row.prompt:  # still reading its prompt: feed the next token
                self._token_ids[slot] = row.prompt.popleft()
                self._positions[slot] += 1
                continue
            self._advance(slot, int(tokens[slot]), _row_logprobs(logprobs, slot, row))

    def _run_steps(self, count):
        """Run `count` steps of the one busy row in one call (see `_steps_per_call`)."""
        row = self._rows[0]
        options = [row.job.options]
        uniforms = np.array([[row.random.random()] for _ in range(count)], "float32")
        tokens, self._cache = self._programs.steps(
            self._cache, self._token_ids, self._positions.copy(), self._history,
            *self._step_settings(options), uniforms,
        )
        tokens = np.asarray(tokens)
        self._count_steps(count, 1, count)
        for step in range(count):
            if self._rows[0] is not row:  # it finished: drop the tokens after
                return
            self._advance(0, int(tokens[step, 0]))

    def _count_steps(self, steps, busy, tokens):
        """Add `steps` steps of `busy` rows (in the cache's rows) that made `tokens`."""
        with self._condition:
            self._steps += steps
            self._tokens += tokens
            self._rows_per_step[busy] += steps
            self._step_rows[len(self._rows)] += steps
            self._recent_rows.extend([busy] * steps)

    def _step_settings(self, options):
        """The rows' stacked settings (on the device) and the step's features.

        Kept while the rows and their settings stay the same, so a step
        does not send a dozen small arrays to the device again.
        """
        # By value: a finished request's settings may be freed and a new
        # request's take their address.
        key = (tuple(options), self._starts.tobytes())
        if key != self._settings_key:
            stop_ids = sorted({i for row in self._rows if row for i in row.job.stop_token_ids})
            self._settings = _settings(options, self._starts.copy(), stop_ids)
            self._settings_key = key
        return self._settings

    def _advance(self, slot, token, logprobs=()):
        """Record `token` for the row in `slot`; emit its text; free it when done."""
        row = self._rows[slot]
        job = row.job
        row.generated += 1
        job.completion_tokens[row.index] += 1
        position = self._positions[slot] + 1
        finish = None
        stopped = False
        if token in job.stop_token_ids:
            text, finish = "", "stop"
        else:
            text, stopped = row.stop_text.feed(row.decoder.push([token]))
            finish = "stop" if stopped else None
        if finish is None and (row.generated >= job.max_new_tokens
                               or position + 1 > self.context_length):
            finish = "length"
        if finish is not None and not stopped:
            text += row.stop_text.feed(row.decoder.flush())[0] + row.stop_text.flush()
        job.emit(StreamEvent(row.index, text, (token,), finish, logprobs=logprobs))
        if finish is not None:
            self._rows[slot] = None
            return
        self._token_ids[slot] = token
        self._positions[slot] = position
        self._history[slot, position] = token
