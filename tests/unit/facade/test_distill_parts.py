"""The pieces of `tunegate distill` that need no teacher: prompts from every shape a user has,
refused lines with `file:line`, contamination, terms as data, the adaptive limit, the rules
and the agreement interval."""

from __future__ import annotations

import json

import pytest

from gateway.catalog.teachers import terms_for
from gateway.errors import SpecError
from gateway.facade.distill import prompts as P
from gateway.facade.distill.asking import Limiter
from gateway.facade.distill.filters import REFUSAL, Item, Rules, apply
from gateway.facade.distill.student import Agreement
from gateway.journal.teacher import ANSWERED, TeacherAnswer


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_prompts_from_chat_completion_and_prompt_only_with_their_references(tmp_path):
    path = _write(tmp_path / "p.jsonl", [
        {"messages": [{"role": "system", "content": "be brief"},
                      {"role": "user", "content": "shelf of drill 1?"},
                      {"role": "assistant", "content": "four"}]},
        {"prompt": "shelf of drill 2?", "completion": "five"},
        {"prompt": "shelf of drill 3?"},
        {"prompt": "shelf of drill 4?", "answer": "six"},
    ])  # fmt: skip
    got = P.from_file(path)
    assert [p.messages[-1]["content"] for p in got] == [f"shelf of drill {i}?" for i in range(1, 5)]
    assert [p.reference for p in got] == ["four", "five", None, "six"]
    assert got[0].messages[0] == {"role": "system", "content": "be brief"}
    assert got[0].source == f"{path}:1"
    kept, repeats = P.unique([*got, got[1]])
    assert len(kept) == 4 and repeats == [got[1]]


def test_a_bad_line_is_refused_with_its_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "ok?"}\n{"prompt": "broken"\n')
    with pytest.raises(SpecError, match=r"p\.jsonl:2: "):
        P.from_file(path)
    with pytest.raises(SpecError, match="no such file"):
        P.from_file(tmp_path / "nope.jsonl")


def test_prompts_overlapping_the_eval_set_are_found(tmp_path):
    long = "please tell me which shelf in the north wing holds the cordless drill kit with two batteries"
    evals = _write(tmp_path / "eval.jsonl", [
        {"messages": [{"role": "user", "content": long}, {"role": "assistant", "content": "4"}]},
        {"messages": [{"role": "user", "content": "Short one?"}, {"role": "assistant", "content": "5"}]},
    ])  # fmt: skip
    prompts = [
        P.Prompt([{"role": "user", "content": f"hi! {long}, thanks"}], "a"),
        P.Prompt([{"role": "user", "content": "short ONE"}], "b"),
        P.Prompt([{"role": "user", "content": "something else entirely"}], "c"),
    ]
    hits = P.contaminated(prompts, evals)
    assert [p.source for p, _ in hits] == ["a", "b"]
    train, held = P.held_out(
        [P.Prompt([{"role": "user", "content": str(i)}], str(i)) for i in range(20)], 0.25
    )
    assert (
        len(held) == 5 and len(train) == 15 and not {p.sha for p in held} & {p.sha for p in train}
    )


def test_terms_are_data_with_sources():
    assert terms_for("gpt-4.1", "openai").distill == "forbidden"
    assert terms_for("meta-llama/Llama-3.1-8B-Instruct").distill == "conditional"
    assert terms_for("meta-llama/Meta-Llama-3-8B-Instruct").distill == "forbidden"
    assert terms_for("deepseek-ai/DeepSeek-R1").distill == "allowed"
    assert terms_for("Qwen/Qwen3-8B").source
    assert terms_for("my-own-model").distill == "unknown"


def test_the_limit_halves_on_429_and_grows_after_clean_runs():
    lim = Limiter(4, 6)
    lim.done(True)
    assert lim.limit == 2
    for _ in range(2):
        lim.done(False)
    assert lim.limit == 3
    for _ in range(100):
        lim.done(False)
    assert lim.limit == 6
    for _ in range(5):
        lim.done(True)
    assert lim.limit == 1


def _item(text: str, reason: str = "stop", tokens: int = 5, ref: str | None = None) -> Item:
    prompt = P.Prompt([{"role": "user", "content": f"q {text}"}], text, ref)
    return Item(prompt, 0, TeacherAnswer("k", prompt.sha, 0, ANSWERED, text, reason, 3, tokens))


def test_each_rule_drops_what_it_names():
    assert REFUSAL.match("I'm sorry, but I can't do that.") and REFUSAL.match("As an AI, no")
    assert not REFUSAL.match("Sorry to hear that! Shelf 4 has it.")
    items = [
        _item('{"shelf": 1}'),
        _item("I cannot help with that."),
        _item('{"shelf": 2', reason="length"),
        _item("   "),
        _item('{"shelf": 3}', tokens=900),
        _item("shelf four"),
        _item('{"shelf": 5}', ref='{"shelf": 6}'),  # parses, but not the reference
        Item(P.Prompt([{"role": "user", "content": "q none"}], "none"), 0, None),
    ]
    out = apply(Rules(keep="json", max_tokens=100), items)
    assert [i.answer.answer for i in out.kept] == ['{"shelf": 1}']
    assert out.counts() == {"no answer": 1, "empty": 1, "truncated": 1, "refusal": 1,
                            "length": 1, "keep": 2, "near-duplicate": 0, "judge": 0}  # fmt: skip
    loose = apply(Rules(truncated=False, refusals=False, keep=None, near_duplicates=None), items)
    assert len(loose.kept) == 6  # only no answer and empty remain
    with pytest.raises(SpecError, match="not a rule"):
        apply(Rules(keep="nonsense:x"), items)


def test_agreement_interval_is_wilson_and_brackets_the_share():
    a = Agreement.of([1.0] * 6)
    assert a.share == 1.0 and a.high == 1.0 and 0.5 < a.low < 0.7
    b = Agreement.of([1.0] * 93 + [0.0] * 7)
    assert b.low < 0.93 < b.high and round(b.low, 2) == 0.86 and round(b.high, 2) == 0.97
    assert Agreement.of([]).n == 0


def test_prompts_from_the_traffic_the_gateway_kept():
    import time

    from gateway.journal.experiments import Experiments
    from gateway.journal.serving import ServeStore, UsageRecord

    with ServeStore() as store:
        exps = Experiments(store)
        exp = exps.start("voice", "dep-a", "dep-b", 0.5, {"log_bodies": {"retention_days": 7}})
        asked = [{"role": "user", "content": "which shelf, kept by the A/B?"}]
        exps.add_body(exp, "req-1", "incumbent", json.dumps(asked), "four")
        logged = [{"role": "user", "content": "logged with --log-prompts"}]
        store.add_usage([
            UsageRecord("req-2", time.time(), "voice", "chat", 200, 5.0, prompt_json=json.dumps(logged)),
            UsageRecord("req-3", time.time(), "other", "chat", 200, 5.0, prompt_json=json.dumps(logged)),
        ])  # fmt: skip
    got = P.from_traffic("voice")
    assert [p.messages for p in got] == [asked, logged] and got[0].source == "req-1"
    with pytest.raises(SpecError, match="--log-bodies"):
        P.from_traffic("nobody")
