"""Prompt baselines without a model: the forms a user names, the few-shot draw (deterministic,
never from the eval set, refused when it would be), and the prompts each arm asks."""

from __future__ import annotations

import pytest

from gateway.data.formats import load
from gateway.errors import SpecError
from gateway.evaluate.baselines import Baseline, build_arm, draw_shots, parse_baseline
from gateway.spec import EvalConfig, JobSpec
from tests.support.job_files import write_jsonl

SYSTEM = {"role": "system", "content": "You answer for Lumen & Lathe."}


def _chat(question: str, answer: str) -> dict:
    return {
        "messages": [
            SYSTEM,
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def _train(n: int) -> list[dict]:
    return [_chat(f"May I borrow sander {i}?", f"Yes, sander {i} is free. - L&L") for i in range(n)]


def _evals(tmp_path, rows):
    path = write_jsonl(tmp_path / "heldout.jsonl", rows)
    return path, load(path).examples


def test_the_forms_a_user_names(tmp_path):
    assert parse_baseline("few-shot:5") == Baseline("few-shot", shots=5)
    assert parse_baseline("few-shot:5").label == "base + 5-shot"
    sys = parse_baseline("system:prompt.txt", relative_to=tmp_path)
    assert sys.path == tmp_path / "prompt.txt" and "prompt.txt" in sys.label
    for bad in ("few-shot:0", "few-shot:65", "few-shot:x", "zero-shot", "system:"):
        with pytest.raises(SpecError):
            parse_baseline(bad)
    # the job file takes the same forms, and a relative prompt file is the job file's neighbour
    assert EvalConfig.model_validate({"baselines": ["few-shot:3", "system:p.txt"]}).baselines
    with pytest.raises(ValueError, match="few-shot:K"):
        EvalConfig.model_validate({"baselines": ["few-shot:0"]})
    (tmp_path / "job.yaml").write_text(
        "base_model: HuggingFaceTB/SmolLM2-135M-Instruct\ntrain: t.jsonl\n"
        "eval: {baselines: [few-shot:2, 'system:p.txt']}\n"
    )
    spec = JobSpec.from_yaml(tmp_path / "job.yaml")
    assert spec.eval.baselines == ["few-shot:2", f"system:{tmp_path / 'p.txt'}"]


def test_the_draw_is_deterministic_and_in_file_order(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", _train(20))
    _, evals = _evals(tmp_path, [_chat("Do you lend ladders?", "Yes. - L&L")])
    first = draw_shots(train, evals, 4)
    assert first.lines == draw_shots(train, evals, 4).lines == sorted(first.lines)
    assert len(first.messages) == 8 and all(m["role"] != "system" for m in first.messages)
    assert draw_shots(train, evals, 4, seed=1).lines != first.lines


def test_examples_that_share_text_with_the_eval_set_are_never_drawn(tmp_path):
    long = (
        "which shelf in the north wing holds the cordless drill kit with two spare batteries today"
    )
    rows = _train(6)
    rows[1] = _chat(long, "Shelf 4. - L&L")  # a 13-word run the eval shares
    rows[3] = _chat("Do you lend ladders?", "Yes. - L&L")  # a short question the eval asks
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    data, evals = _evals(
        tmp_path,
        [_chat(f"please tell me {long}", "Shelf 4."), _chat("Do you lend ladders?", "Yes.")],
    )
    shots = draw_shots(train, evals, 4)
    assert shots.excluded == [2, 4]  # file lines
    assert not set(shots.lines) & {2, 4}
    texts = " ".join(m["content"] for m in shots.messages)
    assert "north wing" not in texts and "ladders" not in texts
    with pytest.raises(SpecError, match="share no text with the eval set") as err:
        draw_shots(train, evals, 5)
    assert "lines 2, 4" in str(err.value)
    # the eval data itself as the training file is refused outright
    prompts = [ex.messages[:-1] for ex in evals]
    with pytest.raises(SpecError, match="the training file is the eval data"):
        build_arm(parse_baseline("few-shot:1"), prompts, evals, data, data)
    with pytest.raises(SpecError, match="--train"):
        build_arm(parse_baseline("few-shot:1"), prompts, evals, None, data)


def test_each_arm_asks_the_question_its_way(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", _train(10))
    data, evals = _evals(tmp_path, [_chat("Do you lend ladders?", "Yes.")])
    prompts = [ex.messages[:-1] for ex in evals]
    arm = build_arm(parse_baseline("few-shot:2"), prompts, evals, train, data)
    (asked,) = arm.prompts
    assert asked[0] == SYSTEM and asked[-1]["content"] == "Do you lend ladders?"
    assert [m["role"] for m in asked] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert "lines" in arm.notes[0]
    prompt = tmp_path / "voice.txt"
    prompt.write_text("Sign every answer: Borrow boldly. - L&L\n")
    (asked,) = build_arm(parse_baseline(f"system:{prompt}"), prompts, evals, None, data).prompts
    assert (
        asked[0]["content"].startswith("Sign every answer")
        and SYSTEM["content"] in asked[0]["content"]
    )
    assert len(asked) == 2
    prompt.write_text("  \n")
    with pytest.raises(SpecError, match=r"voice.txt:1: the system prompt is empty"):
        build_arm(parse_baseline(f"system:{prompt}"), prompts, evals, None, data)
    prompt.write_bytes(b"\xff\xfe bad")
    with pytest.raises(SpecError, match="not UTF-8"):
        build_arm(parse_baseline(f"system:{prompt}"), prompts, evals, None, data)
