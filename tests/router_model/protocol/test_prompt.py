import hashlib
from dataclasses import dataclass

import pytest

from router_model.protocol.prompt import (
    fill_policy_prompt,
    normalize_question,
    render_policy_template,
    render_upstream_prompt,
)
from router_model.protocol.templates import (
    Variant,
    default_pool_descriptors,
    reference_template,
    template_parts,
    upstream_prompt_template,
)

QWEN_SHA = "ba0c780bd10718904371c27cfdd2cfc3300e4d164612054989cfb2032ddb0f29"
LLAMA_SHA = "9a5162b42686690de9647e233c2e4a923169025eff0d11a24f9386e9c4fa8a4f"
UPSTREAM_SHA = "501cb31d456f66a232918743e899ba3909d9bd88e244c22703d3ba56b363d1eb"


@dataclass(frozen=True)
class Model:
    name: str
    description: str


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.mark.parametrize(("variant", "digest"), [("qwen", QWEN_SHA), ("llama", LLAMA_SHA)])
def test_default_pool_renders_reference_bytes(variant: Variant, digest: str) -> None:
    rendered = render_policy_template(default_pool_descriptors(), variant)
    assert sha256(rendered) == digest
    assert rendered == reference_template(variant)


def test_upstream_template_bytes() -> None:
    assert sha256(upstream_prompt_template()) == UPSTREAM_SHA


def test_llama_template_has_extra_rule_only() -> None:
    qwen, llama = template_parts("qwen"), template_parts("llama")
    assert qwen.paragraphs == llama.paragraphs
    assert qwen.footer == llama.footer
    assert "DO NOT output <think> ... </think> as a literal string" in llama.middle
    assert "DO NOT output" not in qwen.middle


def test_default_pool_facts() -> None:
    pool = default_pool_descriptors()
    assert [m.name for m in pool] == [
        "Qwen2.5-7B-Instruct",
        "LLaMA-3.1-8B-Instruct",
        "LLaMA-3.1-70B-Instruct",
        "Mistral-7B-Instruct",
        "Mixtral-8x22B-Instruct",
        "Gemma-2-27B-Instruct",
    ]
    assert pool[0].description.startswith("Qwen2.5-7B-Instruct is a powerful")
    assert pool[5].description.endswith("making powerful AI more accessible.")
    assert pool[5].temperature == 0.1
    assert pool[2].usd_per_1m_output_tokens == 0.88
    assert all("\n" not in m.description for m in pool)


def test_custom_pool_renders_its_names_and_descriptors() -> None:
    pool = [Model("Alpha-1B", "Alpha is small."), Model("Beta-9B", "Beta is big.")]
    rendered = render_policy_template(pool, "qwen")
    reference = reference_template("qwen")
    assert "selected from [Alpha-1B, Beta-9B]." in rendered
    assert (
        "#### The Descriptions of Each LLM \nAlpha-1B:Alpha is small.\n\nBeta-9B:Beta is big."
        "\n\nIf you find" in rendered
    )
    assert "Qwen2.5-7B-Instruct" not in rendered
    head = reference[: reference.index("[") + 1]
    assert rendered.startswith(head)
    assert rendered.endswith("Question: {question}\n\n")


def test_braces_in_custom_pool_do_not_break_filling() -> None:
    pool = [Model("Curly{x}", "Writes {json} and {question} literally }{.")]
    template = render_policy_template(pool, "llama")
    prompt = fill_policy_prompt(template, "what is {this}")
    assert "Curly{x}:Writes {json} and {question} literally }{." in prompt
    assert "[Curly{x}]" in prompt
    assert prompt.endswith("Question: what is {this}?\n\n")


def test_fill_default_template() -> None:
    template = render_policy_template(default_pool_descriptors(), "qwen")
    prompt = fill_policy_prompt(template, "  who wrote war and peace ")
    assert prompt == reference_template("qwen").format_map({"question": "who wrote war and peace?"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("who is it", "who is it?"),
        ("who is it?", "who is it?"),
        ("  who is it?  \n", "who is it?"),
        ("who is it.", "who is it.?"),
        ("", ""),
        ("   ", ""),
        ("?", "?"),
    ],
)
def test_normalize_question(raw: str, expected: str) -> None:
    assert normalize_question(raw) == expected


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([], "empty"),
        (["a:b"], "':'"),
        (["a\nb"], "line break"),
        (["  "], "empty name"),
        (["Same", "same"], "twice"),
    ],
)
def test_invalid_pools_are_rejected(names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_policy_template([Model(n, "d") for n in names], "qwen")


def test_upstream_prompt_inserts_query_verbatim() -> None:
    query = " what is {x} in {{y}}?"
    prompt = render_upstream_prompt(query)
    assert prompt == upstream_prompt_template().replace("{query}", query)
    assert prompt.endswith(
        "Here is the sub-question for you to assist with:  what is {x} in {{y}}?\n\n"
    )
