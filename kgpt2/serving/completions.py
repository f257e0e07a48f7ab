"""`/v1/completions`: check a request, run it on the batching engine, answer.

Each prompt becomes one engine job with `n` choices (each choice its own
row); OpenAI numbers the choices `prompt_index * n + choice`. Events from the
engine thread are handed to the event loop with `call_soon_threadsafe`, so
a streamed answer sends text as soon as its token is decoded. A client that
disconnects cancels its jobs, which frees their rows before the next step.

Tokens are counted as the model sees them: a prompt's tokens include the
`<|endoftext|>` put before it when the server prepends one (`prepend_bos`,
see `kgpt2.generation.prompts.tokenize_prompt`), and `usage.prompt_tokens`
counts each prompt once, however many choices `n` asks for (as OpenAI
does).

Example:
```python
import kgpt2
from kgpt2.generation.batching_engine import BatchingEngine
from kgpt2.serving.completions import CompletionService
from kgpt2.serving.schemas import CompletionRequest

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
service = CompletionService(BatchingEngine(lm), "gpt2_tiny_random")
request = CompletionRequest(model="gpt2_tiny_random", prompt="Hi", max_tokens=4,
                            temperature=0.0)
# The prompt's token ids:
print(service.check(request)[0])  # [50256, 17250]
```
"""

import asyncio
import json
import time
import uuid

from kgpt2.errors import Error
from kgpt2.errors import InputError
from kgpt2.generation.batching_engine import EngineClosedError
from kgpt2.generation.batching_engine import QueueFullError
from kgpt2.generation.detokenize import IncrementalDecoder
from kgpt2.generation.prompts import prepends_bos
from kgpt2.generation.prompts import tokenize_prompt
from kgpt2.generation.row_sampling import ROW_SAMPLERS
from kgpt2.generation.row_sampling import SamplingOptions
from kgpt2.samplers.logits_processing import logit_bias_pairs
from kgpt2.serving.api_errors import ApiError
from kgpt2.serving.logprobs import TokenLog
from kgpt2.serving.schemas import Completion
from kgpt2.serving.schemas import CompletionChoice
from kgpt2.serving.schemas import Usage

MAX_STOP_SEQUENCES = 4


def sampling_options(request, logprobs=None):
    """The request's `SamplingOptions`, or an `ApiError` naming the field.

    Without `sampler`, OpenAI's meaning: `temperature: 0` is greedy, else
    sampling with the given `temperature` (default 1), `top_p` and `top_k`.
    With `sampler`, that kgpt2 sampler with its own defaults for what the
    request leaves out. `logprobs` is how many alternatives to report per
    token (None: no log-probabilities).
    """
    given = request.model_fields_set
    greedy = request.temperature == 0 or (request.sampler or "").lower() == "greedy"
    values = {
        "temperature": None if greedy else request.temperature,
        "k": request.top_k,
        "p": request.top_p,
        "min_p": request.min_p,
        "repetition_penalty": request.repetition_penalty,
        "no_repeat_ngram_size": request.no_repeat_ngram_size,
        "presence_penalty": request.presence_penalty,
        "frequency_penalty": request.frequency_penalty,
        "logit_bias": request.logit_bias or None,
    }
    extra = {"min_new_tokens": request.min_tokens or 0, "logprobs": logprobs}
    name = "greedy" if greedy else request.sampler
    try:
        if name is None:
            return SamplingOptions(
                temperature=1.0 if request.temperature is None else request.temperature,
                top_k=request.top_k or 0,
                top_p=1.0 if request.top_p is None else request.top_p,
                min_p=request.min_p or 0.0,
                repetition_penalty=request.repetition_penalty or 1.0,
                no_repeat_ngram_size=request.no_repeat_ngram_size or 0,
                presence_penalty=request.presence_penalty or 0.0,
                frequency_penalty=request.frequency_penalty or 0.0,
                logit_bias=request.logit_bias or (),
                seed=request.seed,
                **extra,
            )
        if name.strip().lower().replace("-", "_") not in ROW_SAMPLERS:
            raise ApiError(
                400, f"Invalid 'sampler': {request.sampler!r} is not served; use one "
                f"of {', '.join(ROW_SAMPLERS)} (beam and contrastive search cannot "
                "share a continuous batch).", param="sampler", code="invalid_value",
            )
        allowed = set(ROW_SAMPLERS[name.strip().lower().replace("-", "_")])
        # Greedy ignores the sampling knobs OpenAI clients may send along.
        options = {
            key: value for key, value in values.items()
            if key in allowed or (value is not None and not greedy and _field(key) in given)
        }
        return SamplingOptions.from_sampler(name, seed=request.seed, **options, **extra)
    except Error as error:
        if isinstance(error, ApiError):
            raise
        raise ApiError(400, f"Invalid 'sampler' options: {error}", param="sampler",
                       code="invalid_value") from error


def _field(option):
    """The request field of a sampler option name."""
    return {"k": "top_k", "p": "top_p"}.get(option, option)


class Prompt:
    """One prompt as the model sees it: `ids`, of which the first `added`
    were put before the text (the `<|endoftext|>` start token, or none)."""

    def __init__(self, text, ids, added):
        self.text = text
        self.ids = ids
        self.added = added


class CompletionService:
    """Validate completion requests and run them on `engine`.

    Args:
        engine: a `kgpt2.generation.batching_engine.BatchingEngine`.
        model_name: the name `/v1/models` shows and requests must use.
        prepend_bos: start each prompt with `<|endoftext|>`; None follows
            the model's preprocessor (see `kgpt2.generation.prompts.prepends_bos`).
    """

    def __init__(self, engine, model_name, prepend_bos=None):
        self.engine = engine
        self.model_name = model_name
        self.prepend_bos = prepends_bos(engine.lm, prepend_bos)
        self.tokenizer = engine.tokenizer

    def prompt(self, text, prepend_bos=None):
        """A `Prompt` for `text` (`prepend_bos` None: the server's convention)."""
        prepend = self.prepend_bos if prepend_bos is None else prepend_bos
        ids = tokenize_prompt(self.engine.lm, text, prepend)
        own = len(self.tokenizer(text)) if text else 0
        return Prompt(text, ids, len(ids) - own)

    def check_fields(self, request, new_tokens):
        """The checks every generation request gets; raise `ApiError` (400)."""
        if request.model != self.model_name:
            raise ApiError(
                400, f"Invalid 'model': {request.model!r} is not served here; this "
                f"server serves {self.model_name!r} (see GET /v1/models).",
                param="model", code="model_not_found",
            )
        refused = request.unsupported()
        if refused:
            field, reason = refused
            raise ApiError(400, f"Unsupported '{field}': {reason}", param=field,
                           code="unsupported_parameter")
        limit = self.engine.max_batch_size
        if request.n > limit:
            raise ApiError(400, f"Invalid 'n': at most {limit} (the server's "
                           f"--max-batch-size), got {request.n}.", param="n")
        if len(request.stops) > MAX_STOP_SEQUENCES or not all(request.stops):
            raise ApiError(400, f"Invalid 'stop': up to {MAX_STOP_SEQUENCES} non-empty "
                           "strings.", param="stop")
        if request.min_tokens and request.min_tokens > new_tokens:
            raise ApiError(400, f"Invalid 'min_tokens': {request.min_tokens} is more than "
                           f"the {new_tokens} tokens the request may generate.",
                           param="min_tokens")
        try:
            logit_bias_pairs("logit_bias", request.logit_bias,
                             self.engine.lm.backbone.vocabulary_size)
        except InputError as error:
            raise ApiError(400, f"Invalid 'logit_bias': {error}", param="logit_bias",
                           code="invalid_value") from error

    def check_context(self, prompts, new_tokens, field="max_tokens", prompt_field="prompt"):
        """Each prompt plus `new_tokens` must fit the context; else `ApiError`."""
        context = self.engine.context_length
        for prompt in prompts:
            size = len(prompt.ids)
            if size >= context:
                raise ApiError(
                    400, f"Invalid '{prompt_field}': {size} tokens (as the model sees "
                    f"them) leave no room in the model's context of {context} tokens.",
                    param=prompt_field, code="context_length_exceeded",
                )
            if size + new_tokens > context:
                raise ApiError(
                    400, f"Invalid '{field}': the prompt has {size} tokens, so "
                    f"{field} can be at most {context - size} (context "
                    f"{context}), got {new_tokens}.",
                    param=field, code="context_length_exceeded",
                )

    def prompts(self, request):
        """Check a completion request; return its `Prompt`s or raise `ApiError`."""
        self.check_fields(request, request.max_tokens)
        if not request.prompts:
            raise ApiError(400, "Invalid 'prompt': give a string or a non-empty list "
                           "of strings.", param="prompt")
        most = self.engine.max_queue + self.engine.max_batch_size
        if len(request.prompts) > most:
            # Even an idle server would refuse the rest: a 429 would invite
            # retries that can never succeed.
            raise ApiError(400, f"Invalid 'prompt': at most {most} prompts per request "
                           f"(the server's --max-queue {self.engine.max_queue} waiting plus "
                           f"--max-batch-size {self.engine.max_batch_size} decoding), got "
                           f"{len(request.prompts)}.", param="prompt")
        prompts = [self.prompt(text) for text in request.prompts]
        self.check_context(prompts, request.max_tokens)
        return prompts

    def check(self, request):
        """Return each prompt's token ids, or raise `ApiError` (400)."""
        return [prompt.ids for prompt in self.prompts(request)]

    def submit(self, request, prompts, new_tokens, options, listener_for):
        """Submit one job per prompt; on a full queue cancel them all (429)."""
        jobs = []
        try:
            for prompt_index, prompt in enumerate(prompts):
                jobs.append(self.engine.submit(
                    prompt.ids, new_tokens, options, n=request.n, stop=request.stops,
                    listener=listener_for(prompt_index),
                ))
        except (QueueFullError, EngineClosedError) as error:
            for job in jobs:
                job.cancel()
            status = 429 if isinstance(error, QueueFullError) else 503
            raise ApiError(status, f"The server is busy: {error}",
                           code="rate_limit_exceeded" if status == 429 else "shutting_down")
        return jobs

    def start(self, request, prompts, new_tokens, options):
        """Submit checked `prompts`; return a `Running` to read their events.

        Raises `ApiError` (429, 503) before anything is sent, so streamed
        requests get a real HTTP status too.
        """
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()

        def listener_for(prompt_index):
            def listener(event):
                loop.call_soon_threadsafe(queue.put_nowait, (prompt_index, event))
            return listener

        jobs = self.submit(request, prompts, new_tokens, options, listener_for)
        return Running(jobs, queue, request.n)

    async def echo_log(self, prompt, top):
        """A `TokenLog` of `prompt`'s own tokens (the added start token is
        context, not text); the first has no logprob unless a start token
        came before it."""
        log = TokenLog(self.tokenizer)
        # scores[p - 1]: position p given the tokens before it.
        scores = await asyncio.to_thread(self.engine.prompt_logprobs, prompt.ids, top)
        decoder = IncrementalDecoder(self.tokenizer)
        offset = 0
        for position in range(prompt.added, len(prompt.ids)):
            token = prompt.ids[position]
            logprob, alternatives = (None, None) if position == 0 else scores[position - 1]
            log.add(token, logprob, alternatives, offset)
            offset += len(decoder.push([token]))
        return log

    def _header(self):
        return {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()),
                "model": self.model_name}

    async def _echoes(self, request, prompts):
        """Per choice index: `(text, TokenLog or None)` put before its output."""
        echoes = {}
        for prompt_index, prompt in enumerate(prompts):
            text, log = "", None
            if request.echo:
                text = prompt.text
                if request.logprobs is not None:
                    log = await self.echo_log(prompt, request.logprobs)
            for choice in range(request.n):
                echoes[prompt_index * request.n + choice] = (text, log)
        return echoes

    async def complete(self, request):
        """The whole answer as a `Completion`."""
        prompts = self.prompts(request)
        options = sampling_options(request, request.logprobs)
        echoes = await self._echoes(request, prompts)
        running = self.start(request, prompts, request.max_tokens, options)
        texts = {i: text for i, (text, _) in echoes.items()}
        logs = {i: log.copy() if log else TokenLog(self.tokenizer)
                for i, (_, log) in echoes.items()}
        reasons = {}
        async for index, event in running.events():
            logs[index].add_event(event, len(texts[index]))
            texts[index] += event.text
            if event.finish_reason:
                reasons[index] = event.finish_reason
        choices = [
            CompletionChoice(
                text=texts[i], index=i, finish_reason=reasons.get(i),
                logprobs=None if request.logprobs is None else logs[i].completion(),
            )
            for i in range(len(prompts) * request.n)
        ]
        return Completion(**self._header(), choices=choices, usage=usage(running.jobs))

    async def stream(self, request):
        """Start `request`; return an async iterator of Server-Sent Events, as
        OpenAI sends them: `data: {chunk}` lines, then `data: [DONE]`."""
        prompts = self.prompts(request)
        options = sampling_options(request, request.logprobs)
        echoes = await self._echoes(request, prompts)
        running = self.start(request, prompts, request.max_tokens, options)
        header = self._header()
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        with_logprobs = request.logprobs is not None

        def chunk(index, text, log, finish_reason=None):
            choice = CompletionChoice(
                text=text, index=index, finish_reason=finish_reason,
                logprobs=log.completion() if with_logprobs and log else None)
            return Completion(**header, choices=[choice]).model_dump_json(exclude_none=True)

        async def events():
            lengths = {}
            try:
                for index, (text, log) in echoes.items():
                    lengths[index] = len(text)
                    if text:
                        yield f"data: {chunk(index, text, log)}\n\n"
                async for index, event in running.events():
                    if not event.text and event.finish_reason is None and not (
                            with_logprobs and event.logprobs):
                        continue
                    log = TokenLog(self.tokenizer)
                    log.add_event(event, lengths[index])
                    lengths[index] += len(event.text)
                    yield f"data: {chunk(index, event.text, log, event.finish_reason)}\n\n"
                if include_usage:
                    last = Completion(**header, choices=[], usage=usage(running.jobs))
                    yield f"data: {last.model_dump_json()}\n\n"
            except ApiError as error:
                yield f"data: {json.dumps(error.body())}\n\n"
            yield "data: [DONE]\n\n"

        return events()


class Running:
    """A submitted request's jobs and the queue their events arrive on."""

    def __init__(self, jobs, queue, n):
        self.jobs = jobs
        self._queue = queue
        self._n = n

    async def events(self):
        """Yield `(choice_index, StreamEvent)` until every choice finished.

        Leaving early (a disconnected client, an error) cancels the jobs,
        which frees their rows before the engine's next step.
        """
        remaining = len(self.jobs) * self._n
        try:
            while remaining:
                prompt_index, event = await self._queue.get()
                remaining -= event.finish_reason is not None
                if event.error:
                    raise ApiError(500, f"Generation failed: {event.error}")
                yield prompt_index * self._n + event.index, event
        finally:
            for job in self.jobs:
                job.cancel()  # No-op for finished jobs; frees rows otherwise.


def usage(jobs):
    """OpenAI's usage: each prompt counted once (not per choice), every
    generated token (a final `<|endoftext|>` included)."""
    prompt = sum(job.prompt_tokens for job in jobs)
    completion = sum(sum(job.completion_tokens) for job in jobs)
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 total_tokens=prompt + completion)
