"""Chat templates rendered as transformers' ``apply_chat_template`` renders them."""

from __future__ import annotations

import pytest

from local_stack.chat_template import ChatTemplateError, render_chat_template

# tokenizer.chat_template of SmolLM2-135M-Instruct (as embedded in its GGUF)
SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def test_smollm2_one_user_message() -> None:
    text = render_chat_template(
        SMOLLM2, [{"role": "user", "content": "Hi?"}], add_generation_prompt=True
    )
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
    )
    without = render_chat_template(
        SMOLLM2, [{"role": "user", "content": "Hi?"}], add_generation_prompt=False
    )
    assert not without.endswith("<|im_start|>assistant\n")


def test_trim_and_lstrip_blocks_like_transformers() -> None:
    template = "{% for m in messages %}\n    {{ m['content'] }}\n{% endfor %}"
    # trim_blocks drops the newline after a block tag; lstrip_blocks the indentation
    # before one; the text line keeps its own indentation and newline.
    text = render_chat_template(
        template, [{"role": "user", "content": "a"}], add_generation_prompt=False
    )
    assert text == "    a\n"


def test_special_tokens_tojson_and_loop_controls() -> None:
    template = (
        "{{ bos_token }}{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}"
        "{{ m | tojson }}{% endfor %}{{ eos_token }}"
    )
    text = render_chat_template(
        template,
        [{"role": "user", "content": "café"}, {"role": "user", "content": "x"}],
        add_generation_prompt=True,
        special_tokens={"bos_token": "<s>", "eos_token": "</s>"},
    )
    assert text == '<s>{"role": "user", "content": "café"}</s>'


def test_generation_blocks_render_their_body() -> None:
    template = "{% generation %}{{ messages[0]['content'] }}{% endgeneration %}!"
    assert render_chat_template(template, [{"content": "x"}], add_generation_prompt=False) == "x!"


def test_raise_exception_and_missing_template() -> None:
    template = "{{ raise_exception('only user messages') }}"
    with pytest.raises(ChatTemplateError, match="only user messages"):
        render_chat_template(template, [], add_generation_prompt=True)
    with pytest.raises(ChatTemplateError, match="no chat template"):
        render_chat_template(None, [], add_generation_prompt=True)


def test_the_sandbox_refuses_attribute_tricks() -> None:
    template = "{{ messages.__class__.__mro__ }}"
    with pytest.raises(ChatTemplateError):
        render_chat_template(template, [], add_generation_prompt=True)
