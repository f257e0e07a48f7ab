"""The request and response bodies of the OpenAI-compatible API, as pydantic models.

Field names, defaults and ranges follow OpenAI's `/v1/completions` and
`/v1/chat/completions` (`temperature: 0` is greedy); kgpt2 adds `top_k`,
`min_p`, `repetition_penalty`, `no_repeat_ngram_size`, `sampler` and
`min_tokens`. Models are strict: a string where a number belongs is a 400,
not a silent conversion. Unknown fields are a 400 that names them
(`extra="forbid"`), and so are the fields OpenAI defines that a GPT-2 cannot
honour (`suffix`, `best_of` other than 1, tools, ...): no parameter is ever
silently ignored.

Example:
```python
from kgpt2.serving.schemas import CompletionRequest

request = CompletionRequest.model_validate({"model": "m", "prompt": ["a", "b"]})
print(request.prompts, request.max_tokens)  # ['a', 'b'] 16
```
"""

from typing import Literal
from typing import Optional
from typing import Union

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field

# OpenAI's limit on `logprobs` for completions; kgpt2 uses it for chat's
# `top_logprobs` too.
MAX_LOGPROBS = 5

STRICT = ConfigDict(strict=True, extra="forbid")


class StreamOptions(BaseModel):
    """OpenAI's `stream_options`: `include_usage` adds a last chunk with usage."""

    model_config = STRICT
    include_usage: bool = False


class GenerationFields(BaseModel):
    """The fields `/v1/completions` and `/v1/chat/completions` share."""

    model_config = STRICT

    model: str
    max_tokens: Optional[int] = Field(16, ge=1)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1)
    stop: Optional[Union[str, list[str]]] = None
    seed: Optional[int] = Field(None, ge=0)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    user: Optional[str] = None
    presence_penalty: Optional[float] = Field(None, ge=-2, le=2)
    frequency_penalty: Optional[float] = Field(None, ge=-2, le=2)
    # Token id (as a string, JSON's keys are) -> bias in [-100, 100].
    logit_bias: Optional[dict[str, float]] = None
    # kgpt2's extras (vLLM has min_tokens too).
    min_tokens: Optional[int] = Field(None, ge=0)
    top_k: Optional[int] = Field(None, ge=0)
    min_p: Optional[float] = Field(None, ge=0, le=1)
    repetition_penalty: Optional[float] = Field(None, gt=0)
    no_repeat_ngram_size: Optional[int] = Field(None, ge=0)
    sampler: Optional[str] = None

    @property
    def stops(self):
        """The stop sequence(s) as a list."""
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class CompletionRequest(GenerationFields):
    """A `POST /v1/completions` body."""

    prompt: Union[str, list[str]] = "<|endoftext|>"
    logprobs: Optional[int] = Field(None, ge=0, le=MAX_LOGPROBS)
    echo: bool = False
    # Refused unless neutral (see `unsupported`), but named so the 400 can
    # say why rather than "unknown field".
    suffix: Optional[str] = None
    best_of: Optional[int] = None

    @property
    def prompts(self):
        """The prompt(s) as a list."""
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def unsupported(self):
        """`(field, reason)` of the first field GPT-2 cannot honour, or None."""
        if self.suffix:
            return "suffix", ("a GPT-2 only continues text left to right; it cannot "
                              "fill in before a suffix. Leave 'suffix' out.")
        if self.best_of not in (None, 1):
            return "best_of", ("kgpt2 serve does not rank candidates; ask for n choices "
                               "with logprobs and pick one yourself. Leave 'best_of' out "
                               "or set it to 1.")
        return None


class TextPart(BaseModel):
    """A chat message's text part (`{"type": "text", "text": ...}`)."""

    model_config = STRICT
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message of a chat request."""

    model_config = STRICT
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[TextPart]]
    name: Optional[str] = None

    def text(self):
        """The content as one string (text parts joined)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatCompletionRequest(GenerationFields):
    """A `POST /v1/chat/completions` body."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: Optional[int] = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: Optional[int] = Field(None, ge=0, le=MAX_LOGPROBS)

    def unsupported(self):
        """`(field, reason)` of the first field that cannot be honoured, or None."""
        if self.top_logprobs is not None and not self.logprobs:
            return "top_logprobs", "'top_logprobs' needs 'logprobs': true."
        if self.max_completion_tokens is not None and "max_tokens" in self.model_fields_set:
            return "max_completion_tokens", ("give 'max_completion_tokens' or "
                                             "'max_tokens', not both.")
        return None

    @property
    def new_tokens(self):
        """`max_completion_tokens`, else `max_tokens`."""
        return self.max_completion_tokens or self.max_tokens


class CompletionLogprobs(BaseModel):
    """OpenAI's legacy `logprobs` of a completion choice (or of one chunk)."""

    tokens: list[str]
    token_logprobs: list[Optional[float]]
    top_logprobs: list[Optional[dict[str, float]]]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: Optional[CompletionLogprobs] = None
    finish_reason: Optional[Literal["stop", "length"]] = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Completion(BaseModel):
    """A `/v1/completions` response, or one streamed chunk of it."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Optional[Usage] = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: list[TokenLogprob]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: Optional[ChatLogprobs] = None
    finish_reason: Optional[Literal["stop", "length"]] = None


class ChatCompletion(BaseModel):
    """A `/v1/chat/completions` response."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(BaseModel):
    role: Optional[Literal["assistant"]] = None
    content: Optional[str] = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    logprobs: Optional[ChatLogprobs] = None
    finish_reason: Optional[Literal["stop", "length"]] = None


class ChatCompletionChunk(BaseModel):
    """One streamed chunk of a `/v1/chat/completions` answer."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Optional[Usage] = None


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class ErrorBody(BaseModel):
    """OpenAI's error envelope: `{"error": {"message", "type", "param", "code"}}`."""

    error: ErrorDetail
