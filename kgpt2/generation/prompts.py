"""Prompts in, token ids out: what every text front end checks before generating.

`kgpt2.generate`, `stream_text` and `kgpt2 serve` take text prompts, a
`max_length` and stop tokens; these functions check them against the model
and turn them into token-id rows, with one message for each mistake.

Example:
```python
import kgpt2
from kgpt2.generation.prompts import prompt_list
from kgpt2.generation.prompts import resolve_max_length
from kgpt2.generation.prompts import tokenize_prompts

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
max_length = resolve_max_length(lm, None)
rows = tokenize_prompts(lm, prompt_list("The quick brown fox"), max_length)
print(max_length, [int(token) for token in rows[0]])  # 64 [50256, 464, 2068, 7586, 21831]
```
"""

from kgpt2.checks import check_integer
from kgpt2.checks import check_token_ids
from kgpt2.errors import InputError
from kgpt2.generation.token_ids import model_max_length


def _check_text(position, prompt):
    """Refuse a prompt the tokenizer cannot encode, naming the bad character."""
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InputError(
            f"prompt {position} is not valid text: character {error.start} is "
            f"{prompt[error.start]!r}, a lone surrogate (what bytes that are not "
            "UTF-8 become, e.g. in a command-line argument or a file read with "
            "errors='surrogateescape'). Decode the text with its real encoding, "
            "or with errors='replace'."
        ) from None


def prompt_list(prompt_or_prompts):
    """The prompts as a list of valid strings; None is one empty prompt.

    Raises:
        InputError: not a string or list of strings, an empty list, or a
            string that is not valid text (a lone surrogate).

    Example:
    ```python
    from kgpt2.generation.prompts import prompt_list

    print(prompt_list("Hi"), prompt_list(["a", "b"]), prompt_list(None))  # ['Hi'] ['a', 'b'] ['']
    ```
    """
    if prompt_or_prompts is None:
        return [""]
    if isinstance(prompt_or_prompts, str):
        prompts = [prompt_or_prompts]
    elif isinstance(prompt_or_prompts, (list, tuple)):
        prompts = list(prompt_or_prompts)
    else:
        hint = " (decode bytes to str first)" if isinstance(
            prompt_or_prompts, (bytes, bytearray)) else ""
        raise InputError(
            "prompt_or_prompts must be a string, a list of strings or None, got "
            f"{type(prompt_or_prompts).__name__}: {prompt_or_prompts!r}{hint}."
        )
    if not prompts:
        raise InputError(
            "prompt_or_prompts is an empty list: give at least one prompt, or "
            "None for unconditional generation."
        )
    for position, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise InputError(
                f"prompt {position} is a {type(prompt).__name__}, not a string: "
                f"{prompt!r}."
            )
        _check_text(position, prompt)
    return prompts


def resolve_max_length(lm, max_length):
    """The length to generate to: `max_length` if `lm` can hold it, or its limit for None.

    The limit is the smaller of the preprocessor's `sequence_length` and the
    model's positions.

    Example:
    ```python
    import kgpt2
    from kgpt2.generation.prompts import resolve_max_length

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    print(resolve_max_length(lm, None), resolve_max_length(lm, 16))  # 64 16
    ```
    """
    preprocessor_length = lm.preprocessor.sequence_length
    limit = min(preprocessor_length, model_max_length(lm))
    if max_length is None:
        return limit
    check_integer(None, "max_length", max_length, minimum=1)
    if max_length > model_max_length(lm):
        raise InputError(
            f"max_length={max_length} is more than the model's "
            f"{model_max_length(lm)} positions."
        )
    if max_length > preprocessor_length:
        raise InputError(
            f"max_length={max_length} is more than the preprocessor's "
            f"sequence_length={preprocessor_length}. Load the model with a "
            f"longer one, e.g. kgpt2.load(preset, sequence_length={max_length})."
        )
    return int(max_length)


def prepends_bos(lm, prepend_bos=None):
    """Whether prompts for `lm` start with `<|endoftext|>`: `prepend_bos`, or
    by default the preprocessor's `add_start_token` (how KerasHub trains and
    generates, and so how kgpt2 fine-tunes).

    Example:
    ```python
    import kgpt2
    from kgpt2.generation.prompts import prepends_bos

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    print(prepends_bos(lm), prepends_bos(lm, False))  # True False
    ```
    """
    if prepend_bos is None:
        return bool(lm.preprocessor.add_start_token)
    if not isinstance(prepend_bos, bool):
        raise InputError(f"prepend_bos must be True, False or None, got {prepend_bos!r}.")
    return prepend_bos


def tokenize_prompt(lm, prompt, prepend_bos=None):
    """A prompt's token ids as the model sees them.

    With `prepend_bos` (see `prepends_bos`) they start with `<|endoftext|>`,
    the separator GPT-2 saw between its training documents; without it the
    prompt's own tokens come alone, as in Hugging Face's `generate` and
    OpenAI's completions. An empty prompt is always `<|endoftext|>`: the
    model needs one token to start from. The literal text `<|endoftext|>`
    in a prompt is the special token.

    Example:
    ```python
    import kgpt2
    from kgpt2.generation.prompts import tokenize_prompt

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    print(tokenize_prompt(lm, "Hello"), tokenize_prompt(lm, "Hello", prepend_bos=False))
    # [50256, 15496] [15496]
    ```
    """
    tokenizer = lm.preprocessor.tokenizer
    ids = [int(i) for i in tokenizer(prompt)] if prompt else []
    start = [tokenizer.start_token_id]
    return (start if prepends_bos(lm, prepend_bos) or not ids else []) + ids


def tokenize_prompts(lm, prompts, max_length, prepend_bos=None):
    """Token ids per prompt (see `tokenize_prompt`), checked against `max_length`.

    Raises:
        InputError: a prompt leaves no room to generate within `max_length`.

    Example:
    ```python
    import kgpt2
    from kgpt2.generation.prompts import tokenize_prompts

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    rows = tokenize_prompts(lm, ["The quick", ""], max_length=16)
    print([[int(token) for token in row] for row in rows])  # [[50256, 464, 2068], [50256]]
    ```
    """
    rows = []
    for prompt in prompts:
        ids = tokenize_prompt(lm, prompt, prepend_bos)
        if len(ids) >= max_length:
            raise InputError(
                f"Prompt {prompt[:40]!r}{'...' if len(prompt) > 40 else ''} has "
                f"{len(ids)} tokens (start token included), which leaves no "
                f"room to generate within max_length={max_length}."
            )
        rows.append(ids)
    return rows


def resolve_stop_token_ids(lm, stop_token_ids):
    """The ids that end a sample: `"auto"` is `<|endoftext|>`, None is none.

    Example:
    ```python
    import kgpt2
    from kgpt2.generation.prompts import resolve_stop_token_ids

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    print(resolve_stop_token_ids(lm, "auto"), resolve_stop_token_ids(lm, None))  # (50256,) None
    ```
    """
    if stop_token_ids is None:
        return None
    if isinstance(stop_token_ids, str):
        if stop_token_ids != "auto":
            raise InputError(
                f"stop_token_ids must be 'auto', None or token ids, got {stop_token_ids!r}."
            )
        return (lm.preprocessor.tokenizer.end_token_id,)
    return check_token_ids("kgpt2.generate", "stop_token_ids", stop_token_ids,
                           lm.backbone.vocabulary_size)
