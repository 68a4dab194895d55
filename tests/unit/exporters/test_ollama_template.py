"""The Ollama TEMPLATE tunegate writes gives exactly the prompt the training (Jinja) template
gives, for each family, on conversations with and without a system prompt, multi-turn, with the
generation prompt; rendered by a Go-template evaluator that follows Ollama's request handling."""

from __future__ import annotations

import pytest

from exporters.chat_format import detect, render_jinja
from gateway.errors import ExportError
from tests.support.chat_templates import ALPACA, FAMILY_TEMPLATES
from tests.support.go_template import execute, ollama_values


@pytest.fixture(autouse=True)
def _needs_jinja2():
    """Every test here needs jinja2 (a skip on the fixture, not on the module)."""
    pytest.importorskip("jinja2")


CONVERSATIONS = [
    [{"role": "user", "content": "What is a torque wrench?"}],
    [
        {"role": "system", "content": "You answer for Lumen & Lathe, a tool library."},
        {"role": "user", "content": "Can I borrow a drill?"},
    ],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Opening hours?\nAnd on Sunday?"},
    ],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "One"},
        {"role": "assistant", "content": "1"},
        {"role": "user", "content": "Two"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "Braces {{ like these }} stay text"},
    ],
]
FAMILY_OF = {
    "chatml": "chatml",
    "qwen2.5": "chatml",
    "smollm2": "chatml",
    "llama3": "llama3",
    "llama3.1": "llama3",
    "gemma": "gemma",
    "mistral": "mistral",
}


@pytest.mark.parametrize("name", sorted(FAMILY_TEMPLATES))
def test_go_template_renders_what_jinja_renders(name):
    template, bos, eos = FAMILY_TEMPLATES[name]
    fmt = detect(template, bos, eos)
    assert fmt.family.name == FAMILY_OF[name]
    go = fmt.go_template()
    for messages in CONVERSATIONS:
        want = render_jinja(template, messages, bos, eos).removeprefix(bos)
        got = execute(go, ollama_values(messages, fmt.default_system))
        assert got == want, (name, messages)


def test_default_system_prompts_and_preambles_are_found():
    qwen = detect(*FAMILY_TEMPLATES["qwen2.5"])
    assert (
        qwen.default_system
        == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    )
    smol = detect(*FAMILY_TEMPLATES["smollm2"])
    assert smol.default_system.startswith("You are a helpful AI assistant named SmolLM")
    llama31 = detect(*FAMILY_TEMPLATES["llama3.1"])
    assert llama31.always_system and llama31.default_system is None
    assert llama31.system_prefix.startswith("Cutting Knowledge Date: December 2023\n")
    plain = detect(*FAMILY_TEMPLATES["chatml"])
    assert plain.default_system is None and not plain.always_system
    assert plain.stops == ["<|im_end|>", "<|im_start|>"]
    assert detect(*FAMILY_TEMPLATES["llama3"]).stops[0] == "<|eot_id|>"


def test_unknown_or_missing_templates_are_refused_with_the_way_out():
    with pytest.raises(ExportError, match="not one tunegate can translate") as err:
        detect(ALPACA)
    assert "--template" in str(err.value) and "### Instruction" in str(err.value)
    with pytest.raises(ExportError, match="no chat template"):
        detect(None)


def test_the_evaluator_is_not_lenient():
    """The Go evaluator really evaluates: wrong field names and branches change the output."""
    data = ollama_values([{"role": "user", "content": "x"}], None)
    assert (
        execute('{{ range .Messages }}{{ if eq .Role "user" }}U{{ else }}A{{ end }}{{ end }}', data)
        == "U"
    )
    assert execute("{{ if .System }}S{{ else }}none{{ end }}", data) == "none"
    assert execute("a  {{- .System -}}  b", data) == "ab"
    with pytest.raises(KeyError):
        execute("{{ $x = 1 }}", data)
