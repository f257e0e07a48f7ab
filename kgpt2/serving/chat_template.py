"""Chat templates: messages to a prompt, in the Jinja format transformers uses.

A template comes from `--chat-template FILE`, or from a Hugging Face folder:
its `chat_template.jinja` file, else the `chat_template` entry of its
`tokenizer_config.json` (a string, or a list of named templates, of which
`default` is used). It renders with the variables transformers passes
(`messages`, `add_generation_prompt`, `bos_token`, `eos_token`) in Jinja's
sandbox, as transformers does, so a template cannot reach Python objects.

Example:
```python
from kgpt2.serving.chat_template import ChatTemplate

template = ChatTemplate(
    "{% for m in messages %}{{ m.role }}: {{ m.content }}\\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}")
print(template.render([{"role": "user", "content": "Hi"}]))
# user: Hi
# assistant:
```
"""

import datetime
import json
import pathlib

from kgpt2.errors import InputError

END_OF_TEXT = "<|endoftext|>"

# What `kgpt2 serve` answers when no template is known.
NO_TEMPLATE = (
    "This model has no chat template, so /v1/chat/completions cannot turn messages "
    "into a prompt. Start the server with --chat-template FILE (a Jinja template, "
    "as in transformers' chat_template), or serve a Hugging Face folder whose "
    "tokenizer_config.json has a chat_template; or use /v1/completions."
)


class ChatTemplate:
    """A compiled chat template.

    Args:
        source: the Jinja text.
        bos_token, eos_token: the values of `bos_token` and `eos_token` in
            the template (GPT-2 uses `<|endoftext|>` for both).
    """

    def __init__(self, source, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT):
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message):
            raise jinja2.exceptions.TemplateError(message)

        def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
            return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent,
                              separators=separators, sort_keys=sort_keys)

        def strftime_now(format):
            return datetime.datetime.now().strftime(format)

        environment = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        environment.filters["tojson"] = tojson
        environment.globals["raise_exception"] = raise_exception
        environment.globals["strftime_now"] = strftime_now
        try:
            self._template = environment.from_string(source)
        except jinja2.exceptions.TemplateError as error:
            raise InputError(f"The chat template is not valid Jinja: {error}") from error
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token

    def render(self, messages, add_generation_prompt=True):
        """The prompt text for `messages` (`[{"role", "content"}, ...]`).

        Raises:
            InputError: the template failed (e.g. its `raise_exception` for
                a role order it does not accept).
        """
        import jinja2

        try:
            return self._template.render(
                messages=messages, add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token, eos_token=self.eos_token,
            )
        except jinja2.exceptions.TemplateError as error:
            raise InputError(f"The chat template refused the messages: {error}") from error


def read_chat_template(path):
    """The template text of file `path`, or an `InputError` naming the file."""
    path = pathlib.Path(path).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"Cannot read the chat template {str(path)!r}: {error}. Give a "
                         "UTF-8 Jinja file with --chat-template.") from error


def folder_chat_template(folder):
    """The chat template a Hugging Face folder ships, or None.

    Example:
    ```python
    from kgpt2.serving.chat_template import folder_chat_template

    print(folder_chat_template("/nonexistent"))  # None
    ```
    """
    folder = pathlib.Path(str(folder)).expanduser()
    if not folder.is_dir():
        return None
    if (folder / "chat_template.jinja").is_file():
        return read_chat_template(folder / "chat_template.jinja")
    config_path = folder / "tokenizer_config.json"
    if not config_path.is_file():
        return None
    try:
        template = json.loads(config_path.read_text(encoding="utf-8")).get("chat_template")
    except (OSError, ValueError, AttributeError) as error:
        raise InputError(f"Cannot read {str(config_path)!r}: {error}.") from error
    if isinstance(template, list):
        named = {entry.get("name"): entry.get("template") for entry in template
                 if isinstance(entry, dict)}
        template = named.get("default")
    return template if isinstance(template, str) and template else None
