"""`/v1/completions`: check a request, run it on the batching engine, answer.

Each prompt becomes one engine job with `n` choices (each choice its own
row); OpenAI numbers the choices `prompt_index * n + choice`. Events from the
engine thread are handed to the event loop with `call_soon_threadsafe`, so
a streamed answer sends text as soon as its token is decoded. A client that
disconnects cancels its jobs, which frees their rows before the next step.

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
print(service.check(request)[0])
```
"""

import asyncio
import json
import time
import uuid

from kgpt2.errors import Error
from kgpt2.generation.batching_engine import EngineClosedError
from kgpt2.generation.batching_engine import QueueFullError
from kgpt2.generation.prompts import tokenize_prompts
from kgpt2.generation.row_sampling import ROW_SAMPLERS
from kgpt2.generation.row_sampling import SamplingOptions
from kgpt2.serving.api_errors import ApiError
from kgpt2.serving.schemas import Completion
from kgpt2.serving.schemas import CompletionChoice
from kgpt2.serving.schemas import Usage

MAX_STOP_SEQUENCES = 4


def sampling_options(request):
    """The request's `SamplingOptions`, or an `ApiError` naming the field.

    Without `sampler`, OpenAI's meaning: `temperature: 0` is greedy, else
    sampling with the given `temperature` (default 1), `top_p` and `top_k`.
    With `sampler`, that kgpt2 sampler with its own defaults for what the
    request leaves out.
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
    }
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
                seed=request.seed,
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
        return SamplingOptions.from_sampler(name, seed=request.seed, **options)
    except Error as error:
        if isinstance(error, ApiError):
            raise
        raise ApiError(400, f"Invalid 'sampler' options: {error}", param="sampler",
                       code="invalid_value") from error


def _field(option):
    """The request field of a sampler option name."""
    return {"k": "top_k", "p": "top_p"}.get(option, option)


class CompletionService:
    """Validate completion requests and run them on `engine`.

    Args:
        engine: a `kgpt2.generation.batching_engine.BatchingEngine`.
        model_name: the name `/v1/models` shows and requests must use.
    """

    def __init__(self, engine, model_name):
        self.engine = engine
        self.model_name = model_name

    def _prompt_ids(self, prompt):
        # A huge max_length: the context check below names the field instead.
        return tokenize_prompts(self.engine.lm, [prompt], max_length=2**31)[0]

    def check(self, request):
        """Return each prompt's token ids, or raise `ApiError` (400)."""
        if request.model != self.model_name:
            raise ApiError(
                400, f"Invalid 'model': {request.model!r} is not served here; this "
                f"server serves {self.model_name!r} (see GET /v1/models).",
                param="model", code="model_not_found",
            )
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
        limit = self.engine.max_batch_size
        if request.n > limit:
            raise ApiError(400, f"Invalid 'n': at most {limit} (the server's "
                           f"--max-batch-size), got {request.n}.", param="n")
        if len(request.stops) > MAX_STOP_SEQUENCES or not all(request.stops):
            raise ApiError(400, f"Invalid 'stop': up to {MAX_STOP_SEQUENCES} non-empty "
                           "strings.", param="stop")
        context = self.engine.context_length
        rows = [self._prompt_ids(prompt) for prompt in request.prompts]
        for row in rows:
            if len(row) >= context:
                raise ApiError(
                    400, f"Invalid 'prompt': {len(row)} tokens (start token included) "
                    f"leave no room in the model's context of {context} tokens.",
                    param="prompt", code="context_length_exceeded",
                )
            if len(row) + request.max_tokens > context:
                raise ApiError(
                    400, f"Invalid 'max_tokens': the prompt has {len(row)} tokens, so "
                    f"max_tokens can be at most {context - len(row)} (context "
                    f"{context}), got {request.max_tokens}.",
                    param="max_tokens", code="context_length_exceeded",
                )
        return rows

    def submit(self, request, rows, listener_for):
        """Submit one job per prompt; on a full queue cancel them all (429)."""
        options = sampling_options(request)
        jobs = []
        try:
            for prompt_index, row in enumerate(rows):
                jobs.append(self.engine.submit(
                    row, request.max_tokens, options, n=request.n, stop=request.stops,
                    listener=listener_for(prompt_index),
                ))
        except (QueueFullError, EngineClosedError) as error:
            for job in jobs:
                job.cancel()
            status = 429 if isinstance(error, QueueFullError) else 503
            raise ApiError(status, f"The server is busy: {error}",
                           code="rate_limit_exceeded" if status == 429 else "shutting_down")
        return jobs

    def start(self, request):
        """Check `request` and submit it; return a `Running` to read its events.

        Raises `ApiError` (400, 429, 503) before anything is sent, so streamed
        requests get a real HTTP status too.
        """
        rows = self.check(request)
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()

        def listener_for(prompt_index):
            def listener(event):
                loop.call_soon_threadsafe(queue.put_nowait, (prompt_index, event))
            return listener

        jobs = self.submit(request, rows, listener_for)
        return Running(jobs, queue, request.n)

    def _header(self):
        return {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()),
                "model": self.model_name}

    async def complete(self, request):
        """The whole answer as a `Completion`."""
        running = self.start(request)
        texts, reasons = {}, {}
        async for index, event in running.events():
            texts[index] = texts.get(index, "") + event.text
            if event.finish_reason:
                reasons[index] = event.finish_reason
        choices = [
            CompletionChoice(text=texts.get(i, ""), index=i, finish_reason=reasons.get(i))
            for i in range(len(request.prompts) * request.n)
        ]
        return Completion(**self._header(), choices=choices, usage=_usage(running.jobs))

    def stream(self, request):
        """Start `request`; return an async iterator of Server-Sent Events, as
        OpenAI sends them: `data: {chunk}` lines, then `data: [DONE]`."""
        running = self.start(request)
        header = self._header()
        include_usage = bool(request.stream_options and request.stream_options.include_usage)

        async def events():
            try:
                async for index, event in running.events():
                    if not event.text and event.finish_reason is None:
                        continue
                    choice = CompletionChoice(text=event.text, index=index,
                                              finish_reason=event.finish_reason)
                    chunk = Completion(**header, choices=[choice])
                    yield f"data: {chunk.model_dump_json(exclude_none=True)}\n\n"
                if include_usage:
                    chunk = Completion(**header, choices=[], usage=_usage(running.jobs))
                    yield f"data: {chunk.model_dump_json()}\n\n"
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


def _usage(jobs):
    prompt = sum(job.prompt_tokens * job.n for job in jobs)
    completion = sum(sum(job.completion_tokens) for job in jobs)
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 total_tokens=prompt + completion)
