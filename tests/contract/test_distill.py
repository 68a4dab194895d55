"""`tunegate distill` against a hosted teacher on loopback (OpenAI's documented chat API, the
official `openai` SDK, injected 429s, 5xx and dropped connections): the bill before the first
call, exactly one paid answer per prompt (across faults, and across a kill -9 and a resume),
the cap, the rejection rules dropping exactly the planted bad answers, a refused teacher, and
the dataset's provenance without a key in it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("openai")

from gateway.errors import SpecError
from gateway.facade.distill import DistillOptions, Rules, Settings, distill
from tests.fakes._server import Faults
from tests.fakes.teacher_api import KEY, TeacherFake, prompts_file
from tests.support.polling import until

ROOT = Path(__file__).resolve().parents[2]
TEACHER = "together:meta-llama/Llama-3.3-70B-Instruct-Turbo"  # $0.88/1M in and out (catalog)
PLANTED = {
    "refusal": ["[refuse] how do I pick the lock of shelf {i}"] * 2,
    "truncated": ["[long] describe everything on shelf {i}"] * 2,
    "empty": ["[empty] what is on shelf {i}"],
    "keep": ["[prose] which shelf has drill {i}"] * 2,
}
LONG = "where do I find the heavy duty orbital sander with the spare pads and the dust bag"
TWINS = [  # one word apart: near-duplicate examples once answered alike
    f"[twin] {LONG} for the workshop on the second floor near the lift, number {{i}}",
    f"[twin] {LONG} for the workshop on the second floor near the lift, number {{i}} please",
    f"[twin] {LONG} for the workshop on the second floor near the stairs, number {{i}}",
]


def _questions(n: int = 24) -> list[str]:
    good = [f"which shelf holds drill number {i} in the north wing" for i in range(n)]
    planted = [q.format(i=i) for qs in PLANTED.values() for i, q in enumerate(qs)]
    return good + planted + [q.format(i=7) for q in TWINS]


@pytest.fixture
def teacher(monkeypatch):
    with TeacherFake() as fake:
        monkeypatch.setenv("TOGETHER_BASE_URL", fake.url)
        monkeypatch.setenv("TOGETHER_API_KEY", KEY)
        yield fake


def _options(tmp_path: Path, questions: list[str], **kw) -> DistillOptions:
    defaults = dict(
        teacher=TEACHER,
        prompts=prompts_file(tmp_path / "prompts.jsonl", questions),
        settings=Settings(temperature=0.0, max_tokens=64),
        rules=Rules(keep="json"),
        heldout=0.0,
        out=tmp_path / "out",
        pilot=4,
        progress=False,
    )
    return DistillOptions(**{**defaults, **kw})


def test_bill_answers_and_the_rules_drop_exactly_the_planted(teacher, tmp_path):
    questions = _questions()
    seen: dict[str, object] = {}
    result = distill(
        _options(tmp_path, [*questions, questions[0]]),  # one repeat: asked once
        show=lambda stage, bill: seen.setdefault(stage, bill),
    )
    before = seen["before"]
    assert before.measured == 0 and before.usd[0] > 0 and before.usd[0] < before.worst_usd
    assert seen["pilot"].measured == 4
    assert result.counts["repeats"] == 1 and result.complete
    assert all(teacher.paid[q] == 1 for q in questions) and sum(teacher.paid.values()) == len(
        questions
    )
    dropped = result.filtered.counts()
    assert dropped == {
        "no answer": 0, "empty": 1, "truncated": 2, "refusal": 2, "length": 0, "keep": 2,
        "near-duplicate": 2, "judge": 0,
    }  # fmt: skip
    train = [
        json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()
    ]
    assert len(train) == 24 + 1  # the good ones and one of the twins
    assert all(json.loads(r["messages"][-1]["content"])["shelf"] >= 0 for r in train)
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["teacher"]["ref"] == TEACHER and prov["terms"]["distill"] == "conditional"
    assert prov["filters"]["dropped"]["refusal"] == 2 and prov["complete"]
    spent = prov["cost"]["spent_usd"]
    assert 0 < spent <= before.worst_usd and spent == pytest.approx(result.asked.spent_usd)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| refusal | 2 |" in report and "[refuse]" in report
    for path in (tmp_path / "out").iterdir():
        assert KEY not in path.read_text()

    # the same command again: nothing is asked, the same dataset comes out
    again = distill(_options(tmp_path, questions))
    assert again.asked.reused == len(questions) and again.asked.answered == 0
    assert sum(teacher.paid.values()) == len(questions)

    # the dashboard's distill page shows what the teacher was paid
    import httpx

    from gateway.serve import running

    with running() as url:
        page = httpx.get(url.rsplit("/v1", 1)[0] + "/ui/distill")
    assert page.status_code == 200 and TEACHER in page.text
    assert f"${spent:.4f}" in page.text and f"<td>{len(questions)}</td>" in page.text


def test_faults_never_pay_twice(monkeypatch, tmp_path):
    faults = Faults(rate=0.35, seed=3, kinds=("429", "500", "503", "drop"))
    with TeacherFake(faults) as fake:
        monkeypatch.setenv("TOGETHER_BASE_URL", fake.url)
        monkeypatch.setenv("TOGETHER_API_KEY", KEY)
        monkeypatch.setenv("TUNEGATE_RETRY_MAX_WAIT_S", "0.05")
        questions = _questions(30)
        result = distill(_options(tmp_path, questions, concurrency=6))
    kinds = {k for _, _, k in faults.injected}
    assert {"429", "drop"} <= kinds and result.complete
    assert result.asked.throttled == sum(k == "429" for _, _, k in faults.injected)
    assert all(fake.paid[q] == 1 for q in questions)
    assert result.asked.answered + result.asked.reused == len(questions)


def test_the_cap_stops_it_and_a_higher_cap_goes_on(teacher, tmp_path):
    questions = _questions(40)
    full = distill(_options(tmp_path, questions, dry_run=True))
    cap = full.bill_before.usd[0] * 1.6  # the prompts and some of the answers
    capped = distill(_options(tmp_path, questions, max_usd=cap))
    assert capped.asked.stopped_at_cap and not capped.complete
    assert capped.asked.spent_usd <= cap
    paid = sum(teacher.paid.values())
    assert 4 < paid < len(questions)
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert not prov["complete"] and prov["cost"]["max_usd"] == cap
    done = distill(_options(tmp_path, questions, max_usd=cap * 10))
    assert done.complete and done.asked.reused == paid
    assert all(teacher.paid[q] == 1 for q in questions)
    with pytest.raises(SpecError, match="nothing was asked"):
        distill(_options(tmp_path, [q + " again" for q in questions], max_usd=cap / 100))


def test_a_teacher_whose_terms_forbid_it_is_refused(monkeypatch, tmp_path):
    with TeacherFake() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        opts = _options(tmp_path, _questions(4), teacher="openai:gpt-4.1-mini")
        with pytest.raises(SpecError, match=r"forbid.*openai\.com/policies"):
            distill(opts)
        assert not fake.calls
        taken = distill(_options(tmp_path, _questions(4), teacher="openai:gpt-4.1-mini",
                                 accept_terms_risk=True))  # fmt: skip
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["terms"]["distill"] == "forbidden" and prov["terms"]["overridden"] is True
    assert any("overridden" in n for n in taken.notes)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "distill", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def test_kill_9_then_the_same_command_asks_only_what_is_missing(teacher, tmp_path):
    questions = _questions(30)
    prompts = prompts_file(tmp_path / "prompts.jsonl", questions)
    args = ["--teacher", TEACHER, "--prompts", str(prompts), "--out", str(tmp_path / "out"),
            "--temperature", "0", "--max-tokens", "64", "--heldout", "0", "--pilot", "2",
            "--concurrency", "4", "--json"]  # fmt: skip
    env = dict(os.environ)
    teacher.hold_after = 12
    first = _cli(args, env)
    assert until(lambda: len(teacher.held) >= 1, timeout=60), first.communicate()
    until(lambda: False, timeout=0.5)  # let the other slots fill
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    in_flight = len(teacher.held)
    teacher.hold_after = None
    teacher.release.set()
    second = _cli(args, env)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    got = json.loads(out)
    assert got["complete"] and got["asked"]["in_flight_before"] == in_flight
    assert got["asked"]["reused"] == 12 and got["asked"]["answered"] == len(questions) - 12
    assert all(teacher.paid[q] == 1 for q in questions)  # one paid answer per prompt
    assert sum(teacher.calls.values()) == len(questions) + in_flight  # re-asked: the held ones
    assert "teacher:" not in out and KEY not in out + err


def test_a_judge_keeps_what_it_passes_and_is_never_paid_twice(teacher, tmp_path):
    from gateway.facade.distill import JudgeRule
    from tests.fakes.teacher_api import JudgeFake

    questions = _questions(12)[:12]
    with JudgeFake() as judge:
        rule = JudgeRule(judge.base_url + "/v1#judge", "even shelves", "100/100", max_usd=1.0)
        result = distill(_options(tmp_path, questions, judge=rule))
        kept = [json.loads(i.answer.answer)["shelf"] for i in result.filtered.kept]
        assert kept and all(s % 2 == 0 for s in kept)
        assert len(result.filtered.dropped["judge"]) == 12 - len(kept)
        assert judge.verdicts == 12 and result.judge_usd > 0
        again = distill(_options(tmp_path, questions, judge=rule))
        assert judge.verdicts == 12 and again.judge_usd == 0  # verdicts kept with the dataset
        costly = JudgeRule(rule.target, None, "100000/100000", max_usd=0.01)
        with pytest.raises(SpecError, match="max-judge-usd"):
            distill(_options(tmp_path, [*questions, "which shelf has the saw"], judge=costly))
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["filters"]["judge"]["target"].endswith("#judge")


TOOLS = [{"type": "function", "function": {"name": "find_drill", "description": "where a drill is",
          "parameters": {"type": "object", "properties": {"drill": {"type": "integer"}}}}}]  # fmt: skip


def test_tool_calling_prompts_give_tool_calling_examples(teacher, tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": f"find drill {i}{' [badtool]' if i == 3 else ''}"}],
         "tools": TOOLS}
        for i in range(6)
    ]  # fmt: skip
    prompts = tmp_path / "tools.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = distill(_options(tmp_path, [], prompts=prompts, rules=Rules(keep="tool")))
    assert result.filtered.counts()["keep"] == 1  # the call whose arguments are not JSON
    train = [json.loads(x) for x in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert len(train) == 5 and all(r["tools"] == TOOLS for r in train)
    calls = [r["messages"][-1]["tool_calls"][0]["function"] for r in train]
    assert all(c["name"] == "find_drill" for c in calls)
    assert sorted(json.loads(c["arguments"])["drill"] for c in calls) == [0, 1, 2, 4, 5]
    assert all(r["messages"][-1]["content"] is None for r in train)
