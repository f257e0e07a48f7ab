"""`/v1/chat/completions`: messages through the model's chat template, then
the same engine, options and checks as `/v1/completions`.

The rendered template is the prompt, tokenized as it is (the template puts
any `<|endoftext|>` where it wants it, as transformers' `apply_chat_template`
does); the answer is OpenAI's `chat.completion` or, streamed,
`chat.completion.chunk`s: a first chunk with the assistant role, then the
text, then the finish reason.

Example:
```python
import kgpt2
from kgpt2.generation.batching_engine import BatchingEngine
from kgpt2.serving.chat import ChatService
from kgpt2.serving.chat_template import ChatTemplate
from kgpt2.serving.completions import CompletionService
from kgpt2.serving.schemas import ChatCompletionRequest

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
service = CompletionService(BatchingEngine(lm), "tiny")
chat = ChatService(service, ChatTemplate("{{ messages[-1].content }}\\nA:"))
request = ChatCompletionRequest(model="tiny", messages=[{"role": "user", "content": "Hi"}])
print(chat.prompts(request)[0].text)
# Hi
# A:
```
"""

import json
import time
import uuid

from kgpt2.errors import InputError
from kgpt2.serving.api_errors import ApiError
from kgpt2.serving.chat_template import NO_TEMPLATE
from kgpt2.serving.completions import sampling_options
from kgpt2.serving.completions import usage
from kgpt2.serving.logprobs import TokenLog
from kgpt2.serving.schemas import AssistantMessage
from kgpt2.serving.schemas import ChatChoice
from kgpt2.serving.schemas import ChatChunkChoice
from kgpt2.serving.schemas import ChatCompletion
from kgpt2.serving.schemas import ChatCompletionChunk
from kgpt2.serving.schemas import ChatDelta


class ChatService:
    """Chat requests on a `CompletionService`'s engine.

    Args:
        service: the `CompletionService` (engine, model name, checks).
        template: a `ChatTemplate`, or None (every request is a 400 that
            says how to give one).
    """

    def __init__(self, service, template=None):
        self.service = service
        self.template = template

    def prompts(self, request):
        """Check a chat request; return its one `Prompt` in a list."""
        service = self.service
        service.check_fields(request, request.new_tokens)
        if self.template is None:
            raise ApiError(400, NO_TEMPLATE, param="messages", code="no_chat_template")
        messages = [{"role": m.role, "content": m.text(),
                     **({"name": m.name} if m.name else {})} for m in request.messages]
        try:
            text = self.template.render(messages)
        except InputError as error:
            raise ApiError(400, f"Invalid 'messages': {error}", param="messages") from error
        prompt = service.prompt(text, prepend_bos=False)
        field = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
        service.check_context([prompt], request.new_tokens, field=field,
                              prompt_field="messages")
        return [prompt]

    def _start(self, request):
        prompts = self.prompts(request)
        top = (request.top_logprobs or 0) if request.logprobs else None
        options = sampling_options(request, top)
        running = self.service.start(request, prompts, request.new_tokens, options)
        header = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()),
                  "model": self.service.model_name}
        return running, header

    async def complete(self, request):
        """The whole answer as a `ChatCompletion`."""
        running, header = self._start(request)
        tokenizer = self.service.tokenizer
        texts, reasons = {}, {}
        logs = {i: TokenLog(tokenizer) for i in range(request.n)}
        async for index, event in running.events():
            logs[index].add_event(event, len(texts.get(index, "")))
            texts[index] = texts.get(index, "") + event.text
            if event.finish_reason:
                reasons[index] = event.finish_reason
        choices = [
            ChatChoice(index=i, message=AssistantMessage(content=texts.get(i, "")),
                       finish_reason=reasons.get(i),
                       logprobs=logs[i].chat() if request.logprobs else None)
            for i in range(request.n)
        ]
        return ChatCompletion(**header, choices=choices, usage=usage(running.jobs))

    def stream(self, request):
        """Start `request`; return an async iterator of Server-Sent Events."""
        running, header = self._start(request)
        tokenizer = self.service.tokenizer
        include_usage = bool(request.stream_options and request.stream_options.include_usage)

        def chunk(index, delta, log=None, finish_reason=None):
            choice = ChatChunkChoice(index=index, delta=delta, finish_reason=finish_reason,
                                     logprobs=log.chat() if log else None)
            return ChatCompletionChunk(**header, choices=[choice]).model_dump_json(
                exclude_none=True)

        async def events():
            try:
                for index in range(request.n):
                    delta = ChatDelta(role="assistant", content="")
                    yield f"data: {chunk(index, delta)}\n\n"
                async for index, event in running.events():
                    log = None
                    if request.logprobs and event.logprobs:
                        log = TokenLog(tokenizer)
                        log.add_event(event, 0)
                    if event.text or log:
                        yield f"data: {chunk(index, ChatDelta(content=event.text), log)}\n\n"
                    if event.finish_reason:
                        yield f"data: {chunk(index, ChatDelta(), None, event.finish_reason)}\n\n"
                if include_usage:
                    last = ChatCompletionChunk(**header, choices=[], usage=usage(running.jobs))
                    yield f"data: {last.model_dump_json()}\n\n"
            except ApiError as error:
                yield f"data: {json.dumps(error.body())}\n\n"
            yield "data: [DONE]\n\n"

        return events()
