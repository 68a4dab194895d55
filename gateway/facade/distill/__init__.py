"""`tg.distill`: from a teacher's answers to a dataset a cheaper student trains on.

prompts (a file, or the gateway's kept traffic) -> deduplicated, checked against the eval set
-> the teacher's terms -> the bill before the first call -> a pilot and the bill again -> every
answer journaled as it comes (`asking`) -> the rejection rules (`filters`) -> `train.jsonl`,
`heldout.jsonl` (the teacher's answers as references), `provenance.json` and `report.md` in
one folder -> with a student, its job file (and, with `train`, the job: `gateway.facade.
distill.student`). The same command run again resumes: nothing answered is asked again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from gateway.errors import SpecError
from gateway.facade.distill import prompts as P
from gateway.facade.distill.asking import AskReport, Settings, ask_all
from gateway.facade.distill.bill import Bill, after_pilot, before_calls
from gateway.facade.distill.filters import Item, Rules, apply
from gateway.facade.distill.judging import JudgeRule, judge
from gateway.facade.distill.options import DistillOptions, DistillResult
from gateway.facade.distill.teacher import check_terms, resolve
from gateway.facade.distill.writing import write_all
from gateway.journal import Journal
from gateway.journal.teacher import ANSWERED, TeacherLedger, digest

__all__ = ["DistillOptions", "DistillResult", "JudgeRule", "Rules", "Settings", "distill"]


def _prompts(
    o: DistillOptions, journal_path: Path | None
) -> tuple[list[P.Prompt], list[P.Prompt], dict[str, int], list[str]]:
    if (o.prompts is None) == (o.from_traffic is None):
        raise SpecError("name the prompts: --prompts FILE or --from-traffic ALIAS (one of them)")
    read = (
        P.from_file(o.prompts)
        if o.prompts
        else P.from_traffic(str(o.from_traffic), o.since, journal_path)
    )
    kept, repeats = P.unique(read)
    notes = [f"{len(repeats)} repeated prompts asked once"] if repeats else []
    dirty: list[tuple[P.Prompt, str]] = []
    if o.eval_data is not None:
        dirty = P.contaminated(kept, o.eval_data)
        gone = {id(p) for p, _ in dirty}
        kept = [p for p in kept if id(p) not in gone]
        if dirty:
            notes.append(
                f"{len(dirty)} prompts share text with {o.eval_data} and are left out "
                f"(e.g. {dirty[0][0].source}: '{dirty[0][1][:60]}')"
            )
    train, held = P.held_out(kept, o.heldout if len(kept) >= 10 else 0.0)
    if not train:
        raise SpecError("no prompts left to distill on", fix="more prompts, or a smaller --heldout")
    counts = {"read": len(read), "repeats": len(repeats), "contaminated": len(dirty),
              "train": len(train), "heldout": len(held)}  # fmt: skip
    return train, held, counts, notes


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text.split("#")[-1].split("/")[-1]).strip("-")[:40]


def distill(
    o: DistillOptions,
    journal_path: Path | None = None,
    show: Callable[[str, Bill], None] | None = None,
) -> DistillResult:
    """Build (or resume) the distilled dataset. Refuses a teacher whose terms forbid it, and a
    bill whose cheapest estimate is over `max_usd`; stops at `max_usd` otherwise. `show` sees
    the bill before the first call ("before") and after the pilot ("pilot")."""
    train, held, counts, notes = _prompts(o, journal_path)
    teacher = resolve(o.teacher, gateway=o.gateway, price=o.price)
    notes = check_terms(teacher, o.accept_terms_risk) + teacher.notes + notes
    if o.judge is not None:
        url, _, model = o.judge.target.partition("#")
        if model in (teacher.model, teacher.ref) and url.rstrip("/") == teacher.base_url:
            raise SpecError(
                "the judge is the teacher: it would grade itself", fix="another --judge"
            )
    everything = train + held
    key = digest([teacher.ref, o.settings.to_json(), [p.sha for p in everything]])[:10]
    out = Path(o.out or f"distill-{_slug(teacher.ref)}-{key}")
    with Journal(journal_path) as journal:
        ledger = TeacherLedger(
            journal, teacher.ref, {"model": teacher.model, **o.settings.to_json()}
        )
        shas = {p.sha for p in everything}
        known = {k: a for k, a in ledger.known().items() if a.prompt_sha in shas}
        result = DistillResult(
            out, teacher, counts, before_calls(teacher, everything, o.settings, known)
        )
        result.notes = notes
        if show is not None:
            show("before", result.bill_before)
        if o.dry_run:
            return result
        _affordable(result.bill_before, o.max_usd)
        pilot = everything[: max(1, o.pilot)]
        first = ask_all(teacher, ledger, pilot, o.settings, max_usd=o.max_usd,
                        concurrency=o.concurrency, progress=o.progress)  # fmt: skip
        known = {k: a for k, a in ledger.known().items() if a.prompt_sha in shas}
        pilot_rows = [known[k] for p in pilot for s in range(o.settings.n)
                      if (k := ledger.key(p.sha, s)) in known]  # fmt: skip
        result.bill = after_pilot(teacher, everything, o.settings, pilot_rows, pilot, known)
        if o.max_usd is not None and result.bill.usd[1] > o.max_usd:
            share = max(0.0, o.max_usd - result.bill.already_usd) / max(result.bill.usd[1], 1e-12)
            result.bill.notes.append(
                f"likely over --max-usd {o.max_usd:g}: it stops there, ~{share:.0%} answered"
            )
        if show is not None:
            show("pilot", result.bill)
        result.asked = ask_all(teacher, ledger, everything, o.settings, max_usd=o.max_usd,
                               concurrency=o.concurrency, progress=o.progress)  # fmt: skip
        _fold_pilot(result.asked, first)
        known = {k: a for k, a in ledger.known().items() if a.prompt_sha in shas}
    items = [
        Item(p, s, known.get(ledger.key(p.sha, s))) for p in train for s in range(o.settings.n)
    ]
    answers = [a for a in known.values() if a.state == ANSWERED]
    result.tokens = (
        sum(a.prompt_tokens or 0 for a in answers),
        sum(a.completion_tokens or 0 for a in answers),
    )
    result.filtered = apply(o.rules, items)
    if o.judge is not None:
        passed, failed, result.judge_usd = judge(
            result.filtered.kept, o.judge, out / "judged.jsonl"
        )
        result.filtered.kept = passed
        result.filtered.dropped["judge"] = failed
    refs = [Item(p, 0, known.get(ledger.key(p.sha, 0))) for p in held]
    result.files = write_all(result, o, refs)
    return result


def _fold_pilot(run: AskReport, pilot: AskReport) -> None:
    """One account of this run: the pilot's answers were asked now, not by an earlier run."""
    run.reused -= pilot.answered
    run.answered += pilot.answered
    run.throttled += pilot.throttled
    run.dropped += pilot.dropped
    run.run_usd += pilot.run_usd
    run.in_flight_before = max(run.in_flight_before, pilot.in_flight_before)
    run.worst_usd_in_flight = max(run.worst_usd_in_flight, pilot.worst_usd_in_flight)


def _affordable(bill: Bill, max_usd: float | None) -> None:
    """Refuse before any call when the prompts alone cost more than the cap (their side of the
    bill is known before anything is asked); otherwise the run stops at the cap."""
    if max_usd is None or bill.usd[0] - bill.already_usd <= max_usd:
        return
    raise SpecError(
        f"the prompts alone would cost ${bill.usd[0]:.4f} at the teacher, over --max-usd "
        f"{max_usd:g}; nothing was asked",
        fix="raise --max-usd, or ask fewer prompts",
    )
