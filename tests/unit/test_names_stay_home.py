"""No backend or deploy-target name outside its own module and the registries (DESIGN): the
code tokens of `gateway/serve/`, `gateway/evaluate/` and `cli/` hold no registered backend or
target name as a string literal, so adding a backend or a target is one module and one registry
line, and nothing switches on a name. Comments and docstrings may name them."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

import exporters.deploy
import providers

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("gateway/serve", "gateway/evaluate", "cli")


def _names() -> set[str]:
    return set(providers.NAMES) | set(exporters.deploy.DEPLOYERS)


def _string_literals(path: Path) -> list[tuple[int, str]]:
    """(line, value) of every string token that is not a docstring (a statement of its own)."""
    out: list[tuple[int, str]] = []
    tokens = list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))
    previous = tokenize.NEWLINE
    for tok in tokens:
        if tok.type == tokenize.STRING and previous not in (tokenize.NEWLINE, tokenize.INDENT,
                                                            tokenize.DEDENT, tokenize.NL):  # fmt: skip
            out.append((tok.start[0], tok.string))
        if tok.type not in (tokenize.COMMENT, tokenize.NL):
            previous = tok.type
    return out


def _value(literal: str) -> str:
    body = literal.lstrip("rbuRBUfF")
    quote = body[:3] if body[:3] in ('"""', "'''") else body[:1]
    return body[len(quote) : -len(quote)]


def _offences(root: Path) -> list[str]:
    names = _names()
    found = []
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*.py")):
            for line, literal in _string_literals(path):
                if _value(literal) in names:
                    found.append(f"{path.relative_to(root)}:{line}: {literal}")
    return found


def test_no_registered_name_is_a_literal_outside_its_module():
    assert _names() >= {"local", "together", "llamacpp", "bedrock"}
    offences = _offences(ROOT)
    assert not offences, "\n".join(offences)


def test_the_scan_sees_a_name_and_skips_docstrings(tmp_path):
    """The scanner itself: a name in code is found, in a docstring or comment it is not."""
    (tmp_path / "cli").mkdir()
    (tmp_path / "gateway" / "serve").mkdir(parents=True)
    (tmp_path / "gateway" / "evaluate").mkdir(parents=True)
    (tmp_path / "cli" / "x.py").write_text(
        '"""together is named here."""\n\n# and bedrock here\nTARGET = "llamacpp"\n'
        'def f():\n    """ollama in a docstring."""\n    return f"{1}" + "openai"\n'
    )
    assert _offences(tmp_path) == ['cli/x.py:4: "llamacpp"', 'cli/x.py:7: "openai"']
