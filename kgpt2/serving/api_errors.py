"""OpenAI-style error responses: `{"error": {"message", "type", "param", "code"}}`.

Every error the API answers names the request field at fault (`param`) and
says what is allowed, so a client can show it as is.

Example:
```python
from kgpt2.serving.api_errors import ApiError

error = ApiError(400, "n must be between 1 and 8, got 9.", param="n")
print(error.response().status_code, error.response().body)
```
"""

from fastapi.responses import JSONResponse

from kgpt2.serving.schemas import ErrorBody
from kgpt2.serving.schemas import ErrorDetail

# HTTP status -> OpenAI's error type.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class ApiError(Exception):
    """An error answer: HTTP `status`, a message, and the field at fault."""

    def __init__(self, status, message, param=None, code=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self):
        """The error as a JSON-ready dict."""
        detail = ErrorDetail(
            message=self.message,
            type=ERROR_TYPES.get(self.status, "invalid_request_error"),
            param=self.param,
            code=self.code,
        )
        return ErrorBody(error=detail).model_dump()

    def response(self):
        """The error as a `JSONResponse`."""
        return JSONResponse(self.body(), status_code=self.status)


def validation_error(errors):
    """An `ApiError` (400) for pydantic's `errors()` list: its first problem,
    naming the top-level field (or saying the JSON is malformed)."""
    first = errors[0]
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    if first.get("type") == "json_invalid":
        context = first.get("ctx", {}).get("error", "")
        return ApiError(400, f"The request body is not valid JSON: {context}".strip(),
                        code="invalid_json")
    if not location:
        return ApiError(400, f"The request body must be a JSON object: {first.get('msg')}.")
    param = location[0]
    if first.get("type") == "extra_forbidden":
        return ApiError(
            400, f"Unrecognized request argument supplied: {'.'.join(location)}. "
            "kgpt2 serve does not implement it (no parameter is silently ignored); "
            "remove it from the request.", param=param, code="unknown_parameter",
        )
    problems = [
        error.get("msg", "") for error in errors
        if [str(p) for p in error.get("loc", ()) if p != "body"][:1] == [param]
    ]
    given = first.get("input")
    shown = "" if first.get("type") == "missing" else f" (got {given!r:.80})"
    return ApiError(
        400, f"Invalid '{param}': {'; or '.join(dict.fromkeys(problems))}{shown}.",
        param=param, code="invalid_value",
    )
