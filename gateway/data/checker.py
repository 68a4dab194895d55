"""`tunegate data check`: format, findings by line, duplicates, contamination, token statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.catalog import load_catalog
from gateway.catalog.schema import ModelInfo
from gateway.data.formats import LoadedFile, load
from gateway.data.hygiene import (
    CONTAMINATION_NGRAM,
    NEAR_THRESHOLD,
    Contamination,
    contamination,
    fingerprints,
)
from gateway.data.sharegpt import Mapping
from gateway.data.tokens import TokenStats, load_tokenizer, token_stats
from gateway.data.upload import upload_findings
from gateway.data.validate import Finding, check_file
from gateway.errors import TunegateError


@dataclass
class CheckReport:
    path: Path
    loaded: LoadedFile
    findings: list[Finding]
    exact: list[list[int]]
    near: list[list[int]]
    contaminated: list[Contamination]
    tokens: TokenStats
    model: ModelInfo | None
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        context = self.model.context if self.model and self.model.context else None
        return {
            "file": str(self.path),
            "format": self.loaded.format,
            "formats_by_line": {k: len(v) for k, v in self.loaded.formats_by_line.items()},
            "n_examples": len(self.loaded.examples),
            "errors": [f.to_json() for f in self.errors],
            "warnings": [f.to_json() for f in self.warnings],
            "exact_duplicates": self.exact,
            "near_duplicates": self.near,
            "contamination": [c.to_json() for c in self.contaminated],
            "tokens": self.tokens.to_json(),
            "suggested_max_seq_len": self.tokens.suggested_max_seq_len(context)
            if self.tokens.lengths
            else None,
            "base_model": self.model.id if self.model else None,
            "notes": self.notes + self.tokens.notes,
        }


def check(
    path: Path,
    *,
    base: str | None = None,
    eval_path: Path | None = None,
    provider: str | None = None,
    fmt: str | None = None,
    near_threshold: float = NEAR_THRESHOLD,
    ngram: int = CONTAMINATION_NGRAM,
    mapping: Mapping | None = None,
    objective: str | None = None,
) -> CheckReport:
    """Run every check on a training file; the file itself is only read. With `provider`, the
    file is also checked as it would be uploaded there unchanged."""
    path = Path(path)
    if not path.is_file():
        raise TunegateError(f"no such file: {path}")
    model = load_catalog().model(base) if base else None
    loaded = load(path, fmt, mapping=mapping)
    text_only = None if model is None else model.vision_params_b == 0
    findings = check_file(
        loaded,
        text_only=text_only,
        template=model.chat_template if model else None,
        provider=provider,
        file_bytes=path.stat().st_size,
        objective=objective,
    )
    if provider:
        findings += upload_findings(loaded, provider)
    notes: list[str] = list(loaded.notes)
    try:
        prints = fingerprints(loaded.examples)
        exact = prints.exact_groups()
        exact_sets = [set(g) for g in exact]
        near = [g for g in prints.near_groups(near_threshold) if set(g) not in exact_sets]
    except ImportError:
        exact, near = fingerprints(loaded.examples, near=False).exact_groups(), []
        notes.append(
            "near-duplicate detection skipped: install the data extra (pip install 'tunegate[data]')"
        )
    contaminated: list[Contamination] = []
    if eval_path is not None:
        contaminated = contamination(loaded.examples, load(Path(eval_path)).examples, ngram)
    tokenizer = load_tokenizer(base)
    stats = token_stats(loaded.examples, tokenizer, base)
    if model is not None and model.context:
        about = "about " if stats.approximate else ""
        for ex, n in zip(loaded.examples, stats.lengths, strict=True):
            if n > model.context:
                findings.append(
                    Finding(
                        ex.line,
                        "error",
                        f"{about}{n:,} tokens, over the {model.context:,}-token context of {model.id} (expected shorter examples)",
                    )
                )
    findings.sort(key=lambda f: (f.line, f.severity))
    return CheckReport(path, loaded, findings, exact, near, contaminated, stats, model, notes)
