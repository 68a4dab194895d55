"""Asking the teacher: every call journaled before it goes out and its answer as soon as it is
back (`gateway.journal.teacher`), a few at a time (fewer after a 429, more after a run of
successes), retried only when no answer came back, and never past the dollar cap: each call
reserves its worst case (its prompt, and `max_tokens` of answer) before it is sent.

Workers only make HTTP calls; this module's loop, on the calling thread, owns the journal, the
budget and the concurrency, so a kill -9 loses at most the calls in flight.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.data.tokens import CHARS_PER_TOKEN, TEMPLATE_TOKENS_PER_MESSAGE
from gateway.facade.distill.prompts import Messages, Prompt
from gateway.facade.distill.teacher import Teacher
from gateway.journal.teacher import ANSWERED, ASKED, TeacherLedger
from gateway.util.progress import step_line
from gateway.util.retry import backoff_s, describe, retryable, status_of


@dataclass(frozen=True)
class Settings:
    """How the teacher samples; part of every answer's key (changing one asks again)."""

    temperature: float = 0.7
    top_p: float | None = None
    max_tokens: int = 512
    system: str | None = None
    n: int = 1  # answers per prompt, each its own call and journal row
    seed: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def messages(self, prompt: Prompt) -> Messages:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + prompt.messages


@dataclass
class CallResult:
    key: str
    text: str | None = None
    finish_reason: str | None = None
    tokens: tuple[int, int] = (0, 0)
    error: str | None = None
    throttled: int = 0  # 429s seen on the way
    dropped: int = 0  # connections lost with no answer (the provider may have billed them)


@dataclass
class AskReport:
    total: int  # calls the dataset needs (prompts x n)
    reused: int = 0  # answered by an earlier run: not asked again
    answered: int = 0  # by this run
    failed: int = 0
    in_flight_before: int = 0  # calls an earlier run sent and never saw answered
    worst_usd_in_flight: float = 0.0  # what those could have cost, at most
    spent_usd: float = 0.0  # every answer the dataset holds, earlier runs included
    run_usd: float = 0.0
    stopped_at_cap: bool = False
    interrupted: bool = False
    throttled: int = 0
    dropped: int = 0
    concurrency: int = 0  # where the adaptive limit ended
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def approx_tokens(messages: Messages) -> int:
    """The data toolkit's approximation (characters / 4, and the chat overhead a message)."""
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return round(chars / CHARS_PER_TOKEN) + TEMPLATE_TOKENS_PER_MESSAGE * len(messages)


def _answer_text(message: Any) -> str:
    """The answer as the ledger keeps it: the text, or the tool calls as
    `{"tool_calls": [...]}` JSON (what the `tool` scorer and the dataset writer read)."""
    calls = getattr(message, "tool_calls", None)
    if calls:
        return json.dumps({"tool_calls": [c.model_dump(exclude_none=True) for c in calls]})
    return message.content or ""


def call(
    teacher: Teacher, client: Any, messages: Messages, s: Settings, key: str,
    tools: list[Any] | None = None,
) -> CallResult:  # fmt: skip
    """One teacher answer, retried on 429 (its retry-after honoured), 5xx and lost
    connections, never after an answer came back. Runs in a worker thread."""
    out = CallResult(key)
    attempts = int(os.environ.get("TUNEGATE_DISTILL_ATTEMPTS", "8"))
    extra = {k: v for k, v in (("top_p", s.top_p), ("seed", s.seed)) if v is not None}
    if tools:
        extra["tools"] = tools
    for attempt in range(1, attempts + 1):
        try:
            res = client.chat.completions.create(
                model=teacher.model, messages=messages, max_tokens=s.max_tokens,
                temperature=s.temperature, **extra,
            )  # fmt: skip
        except Exception as exc:  # the SDK's errors: retried when retrying cannot pay twice
            code = status_of(exc)
            out.throttled += code == 429
            out.dropped += code is None
            out.error = describe(exc)
            if not retryable(exc) or attempt == attempts:
                return out
            time.sleep(backoff_s(attempt, exc))
            continue
        choice = res.choices[0]
        usage = res.usage
        out.text = _answer_text(choice.message)
        out.finish_reason = choice.finish_reason
        out.tokens = (
            (usage.prompt_tokens, usage.completion_tokens)
            if usage
            else (approx_tokens(messages), round(len(out.text) / CHARS_PER_TOKEN))
        )
        out.error = None
        return out
    return out


class Limiter:
    """Additive increase, multiplicative decrease: half after a call that met a 429, one more
    after `limit` clean calls in a row, between 1 and `top`."""

    def __init__(self, start: int, top: int):
        self.limit, self.top, self._streak = max(1, start), max(1, top), 0

    def done(self, throttled: bool) -> None:
        if throttled:
            self.limit, self._streak = max(1, self.limit // 2), 0
            return
        self._streak += 1
        if self._streak >= self.limit and self.limit < self.top:
            self.limit, self._streak = self.limit + 1, 0


@dataclass
class _Run:
    teacher: Teacher
    ledger: TeacherLedger
    settings: Settings
    max_usd: float | None
    report: AskReport
    reserved: dict[str, float] = field(default_factory=dict)  # key -> worst case, in flight
    started: float = field(default_factory=time.monotonic)
    shown: float = 0.0

    def worst(self, messages: Messages) -> float:
        return self.teacher.price.usd(approx_tokens(messages) * 1.25, self.settings.max_tokens)

    def affordable(self, cost: float) -> bool:
        if self.max_usd is None:
            return True
        return self.report.spent_usd + sum(self.reserved.values()) + cost <= self.max_usd + 1e-12

    def settle(self, res: CallResult) -> None:
        self.reserved.pop(res.key, None)
        self.report.throttled += res.throttled
        self.report.dropped += res.dropped
        if res.text is None:
            self.report.failed += 1
            self.report.errors.append(res.error or "no answer")
            self.ledger.failed(res.key, res.error or "no answer")
            return
        usd = self.teacher.price.usd(*res.tokens)
        self.ledger.answered(res.key, res.text, res.finish_reason, res.tokens, usd)
        self.report.answered += 1
        self.report.spent_usd += usd
        self.report.run_usd += usd

    def show(self, running: int, limit: int, last: bool = False) -> None:
        now = time.monotonic()
        if not last and now - self.shown < 1.0:
            return
        self.shown = now
        r = self.report
        done = r.reused + r.answered
        rate = r.answered / max(now - self.started, 1e-6)
        left = r.total - done - r.failed
        eta = f", ETA {left / rate:.0f}s" if rate > 0 and left > 0 else ""
        step_line(
            f"teacher: {done}/{r.total} answered, ${r.spent_usd:.4f} spent, {running} in flight "
            f"(up to {limit}){eta}",
            last=last,
        )


def ask_all(
    teacher: Teacher,
    ledger: TeacherLedger,
    prompts: list[Prompt],
    settings: Settings,
    *,
    max_usd: float | None = None,
    concurrency: int = 4,
    max_concurrency: int = 16,
    timeout_s: float = 120.0,
    progress: bool = True,
) -> AskReport:
    """Ask the teacher for every (prompt, sample) the ledger lacks; what is there is reused."""
    known = ledger.known()
    todo: list[tuple[str, int, Messages, Any]] = []  # (prompt sha, sample, messages, tools)
    report = AskReport(total=len(prompts) * settings.n)
    run = _Run(teacher, ledger, settings, max_usd, report)
    for prompt in prompts:
        for sample in range(settings.n):
            key = ledger.key(prompt.sha, sample)
            row = known.get(key)
            if row is not None and row.state == ANSWERED:
                report.reused += 1
                report.spent_usd += row.usd or 0.0
                continue
            messages = settings.messages(prompt)
            if row is not None and row.state == ASKED:
                report.in_flight_before += 1
                report.worst_usd_in_flight += run.worst(messages)
            todo.append((prompt.sha, sample, messages, prompt.tools))
    limiter = Limiter(concurrency, max_concurrency)
    client = teacher.client(timeout_s)
    running: dict[Future[CallResult], str] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, max_concurrency), thread_name_prefix="teacher")
    try:
        while todo or running:
            while todo and len(running) < limiter.limit and not report.stopped_at_cap:
                prompt_sha, sample, messages, tools = todo[0]
                cost = run.worst(messages)
                if not run.affordable(cost):
                    report.stopped_at_cap = True
                    break
                todo.pop(0)
                key = ledger.asking(prompt_sha, sample)  # journaled before it goes out
                run.reserved[key] = cost
                running[pool.submit(call, teacher, client, messages, settings, key, tools)] = key
            if report.stopped_at_cap and not running:
                break
            if not running:
                continue
            done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                running.pop(fut)
                res = fut.result()
                run.settle(res)
                limiter.done(res.throttled > 0)
            if progress:
                run.show(len(running), limiter.limit)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        pool.shutdown(wait=not report.interrupted, cancel_futures=True)
    report.concurrency = limiter.limit
    if progress:
        run.show(0, limiter.limit, last=True)
    return report
