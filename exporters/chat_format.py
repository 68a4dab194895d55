"""The training chat template, recognised and rewritten as an Ollama (Go) template.

Ollama does not run the Jinja template embedded in a GGUF; it needs a Go template, and guessing
one from the Jinja source is what makes fine-tunes "never stop" in Ollama. So tunegate renders
the real Jinja template on probe conversations and accepts a family only when its own layout
reproduces every render *exactly*. It then writes the Go template from that layout. The
template's default system prompt (SmolLM2, Qwen2.5) becomes the Modelfile's SYSTEM. A fixed
system preamble (Llama 3.1's knowledge-date lines) stays inside the template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import ExportError

SYS, U1, A1, U2 = "SYSTEM-PROBE-7", "user probe one", "assistant probe", "user probe two"


@dataclass(frozen=True)
class Family:
    """How one chat format lays out turns (the markers around each message)."""

    name: str
    bos: str  # written by the tokenizer, not the template; stripped from Jinja renders
    user: tuple[str, str]
    assistant: tuple[str, str]
    system: tuple[str, str] | None  # None: the system text is merged into the first user turn
    stops: tuple[str, ...]
    merge_sep: str = "\n\n"


FAMILIES = (
    Family(
        "chatml",
        "",
        ("<|im_start|>user\n", "<|im_end|>\n"),
        ("<|im_start|>assistant\n", "<|im_end|>\n"),
        ("<|im_start|>system\n", "<|im_end|>\n"),
        ("<|im_end|>", "<|im_start|>"),
    ),
    Family(
        "llama3",
        "<|begin_of_text|>",
        ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
        ("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
        ("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"),
        ("<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"),
    ),
    Family(
        "gemma",
        "<bos>",
        ("<start_of_turn>user\n", "<end_of_turn>\n"),
        ("<start_of_turn>model\n", "<end_of_turn>\n"),
        None,
        ("<end_of_turn>", "<start_of_turn>"),
    ),
    Family(
        "mistral",
        "<s>",
        ("[INST] ", " [/INST]"),
        ("", "</s>"),
        None,
        ("</s>", "[INST]"),
    ),
)


@dataclass(frozen=True)
class ChatFormat:
    """A recognised family plus what the probes revealed about this particular template."""

    family: Family
    system_prefix: str = ""  # fixed text before the system content (Llama 3.1 dates)
    always_system: bool = False  # the system block is written even without a system message
    default_system: str | None = None  # used when the conversation has no system message

    @property
    def stops(self) -> list[str]:
        return list(self.family.stops)

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt this format gives `messages` with the generation prompt (no BOS)."""
        fam = self.family
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
        turns = messages[1:] if system is not None else messages
        if system is None:
            system = self.default_system
        out = ""
        if fam.system is not None and (system is not None or self.always_system):
            out += fam.system[0] + self.system_prefix + (system or "") + fam.system[1]
        pending = system if fam.system is None else None
        for m in turns:
            role = m["role"]
            content = m["content"]
            if role == "user" and pending:
                content, pending = pending + fam.merge_sep + content, None
            marks = fam.user if role == "user" else fam.assistant
            out += marks[0] + content + marks[1]
        return out + fam.assistant[0]

    def go_template(self) -> str:
        """The same layout in Ollama's Go-template syntax (.System, .Messages)."""
        fam = self.family
        esc = _go_text
        parts = []
        if fam.system is not None:
            block = esc(fam.system[0] + self.system_prefix) + "{{ .System }}" + esc(fam.system[1])
            parts.append(block if self.always_system else "{{ if .System }}" + block + "{{ end }}")
            parts.append('{{ range .Messages }}{{ if eq .Role "user" }}')
            parts.append(esc(fam.user[0]) + "{{ .Content }}" + esc(fam.user[1]))
        else:
            parts.append('{{ $sys := .System }}{{ range .Messages }}{{ if eq .Role "user" }}')
            parts.append(
                esc(fam.user[0])
                + "{{ if $sys }}{{ $sys }}"
                + esc(fam.merge_sep)
                + '{{ $sys = "" }}{{ end }}{{ .Content }}'
                + esc(fam.user[1])
            )
        parts.append('{{ else if eq .Role "assistant" }}')
        parts.append(esc(fam.assistant[0]) + "{{ .Content }}" + esc(fam.assistant[1]))
        parts.append("{{ end }}{{ end }}" + esc(fam.assistant[0]))
        return "".join(parts)


def _go_text(text: str) -> str:
    """Literal text for a Go template (only `{{` needs escaping)."""
    return text.replace("{{", '{{ "{{" }}')


PROBES: list[list[dict[str, str]]] = [
    [{"role": "user", "content": U1}],
    [{"role": "system", "content": SYS}, {"role": "user", "content": U1}],
    [
        {"role": "user", "content": U1},
        {"role": "assistant", "content": A1},
        {"role": "user", "content": U2},
    ],
    [
        {"role": "system", "content": SYS},
        {"role": "user", "content": U1},
        {"role": "assistant", "content": A1},
        {"role": "user", "content": U2},
    ],
]


def render_jinja(
    template: str, messages: list[dict[str, str]], bos: str = "", eos: str = ""
) -> str:
    """Render a Hugging Face chat template the way transformers does (sandboxed Jinja)."""
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = lambda v, **_: __import__("json").dumps(v, ensure_ascii=False)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: "26 Jul 2024"
    return env.from_string(template).render(
        messages=messages, bos_token=bos, eos_token=eos, add_generation_prompt=True
    )


def _renders(template: str, bos: str, eos: str) -> list[str | None]:
    out: list[str | None] = []
    for probe in PROBES:
        try:
            out.append(render_jinja(template, probe, bos, eos))
        except Exception:  # a template may refuse system messages (Gemma 2): that probe is skipped
            out.append(None)
    return out


def _fit(family: Family, renders: list[str | None]) -> ChatFormat | None:
    """The format of `family` that reproduces every probe render, if there is one."""
    texts = [r.removeprefix(family.bos) if r is not None else None for r in renders]
    plain, with_sys = texts[0], texts[1]
    if plain is None:
        return None
    fmt = ChatFormat(family)
    if family.system is not None and with_sys is not None:
        start = with_sys.find(family.system[0])
        end = with_sys.find(SYS)
        if start == 0 and end > 0:
            prefix = with_sys[len(family.system[0]) : end]
            fmt = ChatFormat(family, system_prefix=prefix)
            if plain.startswith(family.system[0] + prefix):
                body = plain[len(family.system[0] + prefix) :]
                default, _, _ = body.partition(family.system[1])
                fmt = ChatFormat(
                    family,
                    system_prefix=prefix,
                    always_system=not default,
                    default_system=default or None,
                )
    for probe, text in zip(PROBES, texts, strict=True):
        if text is not None and fmt.render(probe) != text:
            return None
    return fmt


def detect(template: str | None, bos: str = "", eos: str = "") -> ChatFormat:
    """The chat format of a Jinja template, or an ExportError that says why and what to do."""
    if not template:
        raise ExportError(
            "the model has no chat template, so Ollama would not know where a turn ends",
            fix="add the chat template to the model's tokenizer_config.json, or pass --template",
        )
    renders = _renders(template, bos, eos)
    if all(r is None for r in renders):
        raise ExportError(
            "the chat template could not be rendered on a plain conversation",
            fix="check the template with `tunegate data render`, or pass --template",
        )
    for family in FAMILIES:
        fmt = _fit(family, renders)
        if fmt is not None:
            return fmt
    known = ", ".join(f.name for f in FAMILIES)
    raise ExportError(
        f"the chat template is not one tunegate can translate for Ollama (known: {known}); "
        f"it renders a user turn as {(renders[0] or '')[:80]!r}",
        fix="pass --template FILE with an Ollama Go template (and --stop for each end-of-turn "
        "token), or deploy to llama.cpp, which reads the template from the GGUF",
    )


def gguf_chat_info(path: Any) -> tuple[str | None, str, str]:
    """(chat template, BOS text, EOS text) from a GGUF file's metadata."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def field(name: str) -> Any:
        f = reader.fields.get(name)
        return None if f is None else f.contents()

    tokens = field("tokenizer.ggml.tokens") or []
    bos_id, eos_id = field("tokenizer.ggml.bos_token_id"), field("tokenizer.ggml.eos_token_id")
    bos = tokens[bos_id] if isinstance(bos_id, int) and bos_id < len(tokens) else ""
    eos = tokens[eos_id] if isinstance(eos_id, int) and eos_id < len(tokens) else ""
    return field("tokenizer.chat_template"), bos, eos
