"""The distilled dataset on disk: `train.jsonl` (chat examples the student trains on),
`heldout.jsonl` (held-out prompts with the teacher's answers as references, for the student's
eval), `provenance.json` (teacher, settings, date, terms, filters, cost: what a reviewer asks
of a dataset), `report.md`, and with a student, `job.yaml`.

Each file is written whole to a temporary name and renamed, so a crash leaves the old file or
the new one; a file the user gave as input is never a destination.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

from gateway.errors import SpecError
from gateway.facade.distill.filters import RULES, Item
from gateway.facade.distill.options import DistillOptions, DistillResult

EXAMPLES_PER_RULE = 2


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _chat(item: Item) -> dict[str, Any]:
    """The example in OpenAI's chat format: a tool-calling answer as `tool_calls`, with the
    `tools` the teacher was offered."""
    answer = item.answer.answer if item.answer else ""
    reply: dict[str, Any] = {"role": "assistant", "content": answer}
    if item.prompt.tools and answer.startswith('{"tool_calls"'):
        reply = {
            "role": "assistant",
            "content": None,
            "tool_calls": json.loads(answer)["tool_calls"],
        }
    row: dict[str, Any] = {"messages": [*item.prompt.messages, reply]}
    if item.prompt.tools:
        row["tools"] = item.prompt.tools
    return row


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _references(refs: list[Item], cut_ok: bool) -> list[Item]:
    """Held-out prompts whose teacher answer can be a reference: not empty, and whole unless
    the rules keep answers cut at max_tokens (then the student learns them so too)."""
    return [
        r for r in refs
        if r.answer and r.answer.answer and r.answer.answer.strip()
        and (cut_ok or r.answer.finish_reason != "length")
    ]  # fmt: skip


def provenance(result: DistillResult, o: DistillOptions) -> dict[str, Any]:
    f = result.filtered
    asked = result.asked
    return {
        "kind": "tunegate.distill",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "teacher": result.teacher.to_json(),
        "settings": o.settings.to_json(),
        "terms": {**result.teacher.terms.to_json(), "overridden": o.accept_terms_risk},
        "prompts": {
            "source": str(o.prompts) if o.prompts else f"traffic:{o.from_traffic}",
            **result.counts,
        },
        "filters": {
            "rules": o.rules.to_json(),
            "judge": o.judge.to_json() if o.judge else None,
            "dropped": f.counts() if f else {},
        },
        "cost": {
            "spent_usd": asked.spent_usd if asked else 0.0,
            "this_run_usd": asked.run_usd if asked else 0.0,
            "max_usd": o.max_usd,
            "judge_usd": result.judge_usd,
            "estimate_usd": list(result.bill.usd) if result.bill else None,
            "price_per_1m": result.teacher.to_json()["price_per_1m"],
        },
        "complete": result.complete,
        "notes": result.notes,
    }


def report_md(result: DistillResult, o: DistillOptions) -> str:
    f, a = result.filtered, result.asked
    lines = [f"# Distilled from {result.teacher.ref}", ""]
    lines += [f"- {k}: {v}" for k, v in result.counts.items()]
    if a is not None:
        lines += [
            f"- teacher answers: {a.reused + a.answered} of {a.total} ({a.reused} from earlier "
            f"runs), {a.failed} failed; ${a.spent_usd:.4f} spent (${a.run_usd:.4f} this run)",
            f"- 429s met: {a.throttled}; connections lost and asked again: {a.dropped}; "
            f"concurrency ended at {a.concurrency}",
        ]
        if a.in_flight_before:
            lines.append(
                f"- {a.in_flight_before} calls were in flight when an earlier run stopped and "
                f"were asked again (a provider may bill them twice: at most "
                f"${a.worst_usd_in_flight:.4f})"
            )
        if a.stopped_at_cap:
            lines.append(f"- **stopped at --max-usd {o.max_usd:g}**: run again with more to go on")
    if f is not None:
        lines += [
            "",
            f"## Rejection rules: kept {len(f.kept)}",
            "",
            "| rule | dropped |",
            "|---|---|",
        ]
        lines += [f"| {rule} | {n} |" for rule, n in f.counts().items()]
        for rule in RULES:
            for item in f.dropped.get(rule, [])[:EXAMPLES_PER_RULE]:
                said = (item.answer.answer or item.answer.error or "") if item.answer else ""
                lines.append(
                    f"\n**{rule}** ({item.prompt.source}): {item.prompt.text()[:120]!r} -> "
                    f"{said[:160]!r}"
                )
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def _job(result: DistillResult, o: DistillOptions, has_heldout: bool) -> dict[str, Any]:
    scorer = (o.rules.keep or "exact").split(":", 1)
    spec: dict[str, Any] = {
        "name": f"distill-{result.out.name}"[:60],
        "base_model": o.student,
        "train": "train.jsonl",
    }
    spec.update(o.student_config)  # the user's training:, lora:, method: ... win
    if o.serve:
        share = result.tokens[1] / max(1, sum(result.tokens)) if sum(result.tokens) else 0.25
        spec["serving"] = {"tokens_per_day": o.serve, "output_share": round(share, 3)}
    if has_heldout:
        ev: dict[str, Any] = {"data": "heldout.jsonl", "scorer": scorer[0]}
        if scorer[0] == "regex":
            ev["pattern"] = scorer[1]
        if scorer[0] == "json" and len(scorer) > 1:
            ev["json_schema"] = str(Path(scorer[1]).resolve())
        ev["max_tokens"] = o.settings.max_tokens
        spec["eval"] = ev
    return spec


def write_all(result: DistillResult, o: DistillOptions, refs: list[Item]) -> dict[str, str]:
    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / name for name in ("train.jsonl", "heldout.jsonl", "provenance.json",
                                           "report.md", "job.yaml")}  # fmt: skip
    if o.prompts is not None and Path(o.prompts).resolve() in {p.resolve() for p in files.values()}:
        raise SpecError(
            f"{o.prompts} is the input: it is never overwritten", fix="--out ANOTHER_FOLDER"
        )
    kept = result.filtered.kept if result.filtered else []
    held = _references(refs, cut_ok=not o.rules.truncated)
    _atomic(files["train.jsonl"], _jsonl([_chat(i) for i in kept]))
    _atomic(files["heldout.jsonl"], _jsonl([_chat(i) for i in held]))
    _atomic(files["provenance.json"], json.dumps(provenance(result, o), indent=2) + "\n")
    _atomic(files["report.md"], report_md(result, o))
    written = {k: str(v) for k, v in files.items() if k != "job.yaml"}
    if o.student:
        _atomic(files["job.yaml"], yaml.safe_dump(_job(result, o, bool(held)), sort_keys=False))
        written["job.yaml"] = str(files["job.yaml"])
    return written
