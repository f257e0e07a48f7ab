"""The request and response bodies of the OpenAI-compatible API, as pydantic models.

Field names, defaults and ranges follow OpenAI's `/v1/completions`
(`temperature: 0` is greedy); kgpt2 adds `top_k`, `min_p`,
`repetition_penalty`, `no_repeat_ngram_size` and `sampler`. Models are
strict: a string where a number belongs is a 400, not a silent conversion.
Fields OpenAI defines that kgpt2 does not implement (`logprobs`, `echo`,
`best_of`, ...) are accepted and ignored, so clients that always send them
keep working.

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


class StreamOptions(BaseModel):
    """OpenAI's `stream_options`: `include_usage` adds a last chunk with usage."""

    model_config = ConfigDict(strict=True, extra="ignore")
    include_usage: bool = False


class CompletionRequest(BaseModel):
    """A `POST /v1/completions` body."""

    model_config = ConfigDict(strict=True, extra="ignore")

    model: str
    prompt: Union[str, list[str]] = "<|endoftext|>"
    max_tokens: Optional[int] = Field(16, ge=1)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1)
    stop: Optional[Union[str, list[str]]] = None
    seed: Optional[int] = Field(None, ge=0)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    user: Optional[str] = None
    # kgpt2's extras.
    top_k: Optional[int] = Field(None, ge=0)
    min_p: Optional[float] = Field(None, ge=0, le=1)
    repetition_penalty: Optional[float] = Field(None, gt=0)
    no_repeat_ngram_size: Optional[int] = Field(None, ge=0)
    sampler: Optional[str] = None

    @property
    def prompts(self):
        """The prompt(s) as a list."""
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    @property
    def stops(self):
        """The stop sequence(s) as a list."""
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: None = None
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


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class ErrorBody(BaseModel):
    """OpenAI's error envelope: `{"error": {"message", "type", "param", "code"}}`."""

    error: ErrorDetail
