"""The judge as a rejection rule (`--judge URL#MODEL`): each answer that passed the cheap rules
is shown to a judge with the rubric (and the prompt's reference, if any) and kept only if it
passes. The judge's cost is estimated for every answer before the first verdict and refused
over `--max-judge-usd`; verdicts are kept in the dataset folder (`judged.jsonl`, by answer), so
a rerun never pays the judge twice for one answer.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import SpecError
from gateway.facade.distill.filters import Item

CONCURRENCY = 4


@dataclass(frozen=True)
class JudgeRule:
    target: str  # URL#MODEL (a deployment through the gateway: http://127.0.0.1:8765/v1#NAME)
    rubric: str | None = None
    price: str | None = None  # IN/OUT USD per 1M tokens; none: a local judge, $0
    max_usd: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _prompt(item: Item, rubric: str) -> str:
    from gateway.evaluate import judge as j

    question = str(item.prompt.messages[-1].get("content") or "")
    answer = item.answer.answer if item.answer else ""
    return j.pointwise_prompt(question, answer or "", item.prompt.reference or "(none)", rubric)


def _load(path: Path) -> dict[str, bool]:
    if not path.is_file():
        return {}
    seen = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            seen[row["key"]] = bool(row["pass"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a crash
    return seen


def judge(items: list[Item], rule: JudgeRule, cache: Path) -> tuple[list[Item], list[Item], float]:
    """(passed, failed, estimated USD of the verdicts asked now)."""
    from gateway.evaluate import judge as j

    url, _, model = rule.target.partition("#")
    if not url.startswith(("http://", "https://")) or not model:
        raise SpecError(f"--judge {rule.target!r}: expected URL#MODEL", fix="e.g. http://h/v1#m")
    rubric = j.parse_rubric(rule.rubric)
    seen = _load(cache)
    todo = [it for it in items if it.answer and it.answer.key not in seen]
    usd = j.estimate_usd([_prompt(it, rubric) for it in todo], 1, j.JudgePrice.parse(rule.price))
    if usd > rule.max_usd:
        raise SpecError(
            f"judging {len(todo)} answers would cost about ${usd:.2f}, over --max-judge-usd "
            f"{rule.max_usd:g}; the dataset is written without the judge rule",
            fix="raise --max-judge-usd, or use a local judge",
        )
    ask = j.http_ask(url.rstrip("/"), model)

    def verdict(item: Item) -> tuple[str, bool]:
        raw = ask(_prompt(item, rubric), j.POINTWISE)
        return item.answer.key, j.verdict_field(raw, "pass") is True  # type: ignore[union-attr]

    cache.parent.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(CONCURRENCY) as pool, cache.open("a", encoding="utf-8") as out:
        for key, passed in pool.map(verdict, todo):
            seen[key] = passed
            out.write(json.dumps({"key": key, "pass": passed}) + "\n")
            out.flush()
    passed_items = [it for it in items if it.answer and seen.get(it.answer.key)]
    failed_items = [it for it in items if not (it.answer and seen.get(it.answer.key))]
    return passed_items, failed_items, usd
