"""The teacher ledger of `tunegate distill`: every teacher answer by (teacher, settings, prompt,
sample), written before the answer is used, so a rerun after a crash, Ctrl-C or kill -9 asks
only for what is missing and never pays twice for an answer it already has.

A row is `asked` when the call is about to go out and `answered` (or `failed`, a definite
refusal) when it came back. An `asked` row found by a later run is a call that was in flight
when the last run died: it may have been billed, and it is asked again (the only way a teacher
can be paid twice; the run reports how many and their worst case).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from gateway.journal import Journal

ASKED, ANSWERED, FAILED = "asked", "answered", "failed"


def digest(value: Any) -> str:
    """A stable sha256 of a JSON-able value (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class TeacherAnswer:
    key: str
    prompt_sha: str
    sample: int
    state: str
    answer: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usd: float | None = None
    attempts: int = 0
    error: str | None = None


def _answer(r: Any) -> TeacherAnswer:
    return TeacherAnswer(
        r["key"], r["prompt_sha"], r["sample"], r["state"], r["answer"], r["finish_reason"],
        r["prompt_tokens"], r["completion_tokens"], r["usd"], r["attempts"], r["error"],
    )  # fmt: skip


class TeacherLedger:
    """The answers of one teacher under one set of sampling settings."""

    def __init__(self, journal: Journal, teacher: str, settings: dict[str, Any]):
        self.journal = journal
        self.teacher = teacher
        self.settings_sha = digest(settings)

    def key(self, prompt_sha: str, sample: int) -> str:
        return digest([self.teacher, self.settings_sha, prompt_sha, sample])

    def known(self) -> dict[str, TeacherAnswer]:
        """Every row of this teacher and settings, by key."""
        rows = self.journal.db.execute(
            "SELECT * FROM teacher_answers WHERE teacher = ? AND settings_sha = ?",
            (self.teacher, self.settings_sha),
        ).fetchall()
        return {r["key"]: _answer(r) for r in rows}

    def asking(self, prompt_sha: str, sample: int) -> str:
        """Mark a call as going out (before it does); its key."""
        key = self.key(prompt_sha, sample)
        with self.journal._tx() as db:
            db.execute(
                "INSERT INTO teacher_answers (key, teacher, settings_sha, prompt_sha, sample,"
                " state, attempts, asked_at) VALUES (?,?,?,?,?,?,1,?) ON CONFLICT(key) DO UPDATE"
                " SET state = excluded.state, attempts = teacher_answers.attempts + 1, asked_at = excluded.asked_at"
                " WHERE teacher_answers.state != 'answered'",
                (key, self.teacher, self.settings_sha, prompt_sha, sample, ASKED, time.time()),
            )
        return key

    def answered(
        self,
        key: str,
        answer: str,
        finish_reason: str | None,
        tokens: tuple[int, int],
        usd: float,
    ) -> None:
        with self.journal._tx() as db:
            db.execute(
                "UPDATE teacher_answers SET state = ?, answer = ?, finish_reason = ?,"
                " prompt_tokens = ?, completion_tokens = ?, usd = ?, error = NULL,"
                " answered_at = ? WHERE key = ?",
                (ANSWERED, answer, finish_reason, tokens[0], tokens[1], usd, time.time(), key),
            )

    def failed(self, key: str, error: str) -> None:
        """A definite refusal (a 400, say: not billed): kept with its reason, asked again by a rerun."""
        with self.journal._tx() as db:
            db.execute(
                "UPDATE teacher_answers SET state = ?, error = ? WHERE key = ? AND state != ?",
                (FAILED, error[:500], key, ANSWERED),
            )


def teacher_spend(journal: Journal) -> list[dict[str, Any]]:
    """Per teacher and settings: answers, failures, calls left in flight by a stopped run,
    tokens and dollars (the dashboard's distill page), newest first."""
    rows = journal.db.execute(
        "SELECT teacher, settings_sha, SUM(CASE WHEN state = 'answered' THEN 1 ELSE 0 END)"
        " AS answered, SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END) AS failed,"
        " SUM(CASE WHEN state = 'asked' THEN 1 ELSE 0 END) AS in_flight,"
        " SUM(COALESCE(prompt_tokens, 0)) AS prompt_tokens,"
        " SUM(COALESCE(completion_tokens, 0)) AS completion_tokens,"
        " SUM(COALESCE(usd, 0)) AS usd, MIN(asked_at) AS first, MAX(answered_at) AS last"
        " FROM teacher_answers GROUP BY teacher, settings_sha ORDER BY MAX(asked_at) DESC"
    ).fetchall()
    return [dict(r) for r in rows]
