"""Chat templates: where they come from, how they render, what they may not do."""

import json

import pytest

import kgpt2
from kgpt2.serving.chat_template import ChatTemplate
from kgpt2.serving.chat_template import folder_chat_template

MESSAGES = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def test_renders_like_transformers_with_its_variables():
    template = ChatTemplate(
        "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}"
        "{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")
    assert template.render(MESSAGES) == (
        "<|endoftext|><user>Hi<|endoftext|><assistant>Hello<|endoftext|><assistant>")
    assert template.render(MESSAGES, add_generation_prompt=False).endswith("Hello<|endoftext|>")


def test_template_errors_and_escapes_are_input_errors():
    refusing = ChatTemplate("{% if messages[0].role != 'system' %}"
                            "{{ raise_exception('a system message must come first') }}{% endif %}")
    with pytest.raises(kgpt2.Error, match="system message must come first"):
        refusing.render(MESSAGES)
    # The sandbox: no reaching Python internals from a template.
    escaping = ChatTemplate("{{ messages.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(kgpt2.Error, match="refused"):
        escaping.render(MESSAGES)
    with pytest.raises(kgpt2.Error, match="not valid Jinja"):
        ChatTemplate("{% for %}")


def test_a_hugging_face_folder_gives_its_template(tmp_path):
    assert folder_chat_template(tmp_path) is None
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({"eos_token": "<|endoftext|>"}))
    assert folder_chat_template(tmp_path) is None
    config.write_text(json.dumps({"chat_template": [
        {"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}))
    assert folder_chat_template(tmp_path) == "D"
    config.write_text(json.dumps({"chat_template": "{{ messages[0].content }}"}))
    assert folder_chat_template(tmp_path) == "{{ messages[0].content }}"
    (tmp_path / "chat_template.jinja").write_text("J", encoding="utf-8")
    assert folder_chat_template(tmp_path) == "J"  # transformers' newer file wins


def test_serve_refuses_a_missing_template_file_before_loading(tmp_path):
    from kgpt2.serving import serve

    missing = tmp_path / "nope.jinja"
    with pytest.raises(kgpt2.Error, match="nope.jinja") as caught:
        serve("gpt2_tiny_random", chat_template=missing)
    assert "\n" not in str(caught.value)
