"""Objectives beyond SFT and DPO: what the job file accepts, which backends run each (catalog
data, with the reason elsewhere), what each costs in the plan, the data kinds each trains on,
and the built-in GRPO rewards."""

from __future__ import annotations

import pytest

from gateway.data.prepare import prepare
from gateway.errors import SpecError
from gateway.facade.plan import plan
from gateway.spec import JobSpec
from gateway.spec.rewards import name_problem, resolve
from tests.support.job_files import chats, kto_rows, preferences, write_jsonl

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


def _plan(catalog, machine, objective, **extra):
    spec = JobSpec(base_model=LLAMA, objective=objective, **extra)
    return plan(spec, catalog=catalog, machine=machine, env={}, examples=2000, avg_tokens=400)


@pytest.mark.parametrize(
    ("objective", "runs"),
    [
        ("sft", {"local", "unsloth", "mlx", "together", "fireworks", "openai", "bedrock"}),
        ("dpo", {"local", "unsloth", "together", "fireworks", "openai"}),
        ("kto", {"local", "unsloth"}),
        ("orpo", {"local", "unsloth"}),
        ("grpo", {"local", "unsloth"}),
    ],
)
def test_each_backend_runs_only_the_objectives_it_has(catalog, cpu_machine, objective, runs):
    extra = {"rewards": ["exact_match"]} if objective == "grpo" else {}
    offers = _plan(catalog, cpu_machine, objective, **extra).offers
    refused = {o.provider: o.reason for o in offers if not o.feasible}
    for provider in runs:  # priced (local offers may still be refused for memory, not method)
        assert objective.upper() not in refused.get(provider, ""), (provider, refused)
    for provider in {o.provider for o in offers} - runs:
        assert f"not {objective.upper()}" in refused[provider], (provider, refused)
    if objective == "grpo":
        assert "post-training API" in refused["together"]
        assert "reinforcement fine-tuning" in refused["fireworks"]


def test_grpo_costs_its_generations(catalog, cpu_machine):
    hw = "h100-80gb"
    from gateway.catalog.hardware import what_if

    machine = what_if(catalog, hw)
    sft = next(o for o in _plan(catalog, machine, "sft").offers if o.provider == "local")
    grpo_plan = _plan(catalog, machine, "grpo", rewards=["exact_match"])
    grpo = next(o for o in grpo_plan.offers if o.provider == "local")
    assert grpo.train_hours.likely > 4 * sft.train_hours.likely  # 4 samples per prompt, decoded
    assert any("GRPO: 4 completions of up to 128 tokens" in a for a in grpo.assumptions)
    big = _plan(
        catalog, machine, "grpo", rewards=["exact_match"], training={"grpo_generations": 16}
    )
    assert next(o for o in big.offers if o.provider == "local").train_hours.likely > (
        grpo.train_hours.likely
    )


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"objective": "grpo"}, "objective grpo needs `rewards"),
        ({"objective": "sft", "rewards": ["exact_match"]}, "`rewards` are for objective grpo"),
        ({"objective": "grpo", "rewards": ["bleu"]}, "unknown reward 'bleu'"),
        ({"objective": "grpo", "rewards": ["regex([)"]}, "bad regular expression"),
    ],
)
def test_job_file_refusals(tmp_path, extra, words):
    import yaml

    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"base_model": LLAMA, "train": "t.jsonl", **extra}))
    with pytest.raises(SpecError, match=words.replace("(", r"\(").replace("[", r"\[")):
        JobSpec.from_yaml(job)


def test_user_rewards_and_regex_are_named_not_imported():
    assert name_problem("my_rewards:brevity") is None  # resolved by the worker, not the plan
    assert name_problem("regex(^yes)") is None
    assert resolve("regex(^yes)")(["yes sir", "no"]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="cannot be loaded"):
        resolve("no_such_module_here:fn")


@pytest.mark.parametrize(
    ("name", "completions", "answers", "expected"),
    [
        ("exact_match", ["Paris.", "paris", "Lyon"], ["Paris", "Paris", "Paris"], [1, 1, 0]),
        ("contains", ["It is Paris, France", "Lyon"], ["paris", "paris"], [1, 0]),
        ("word_f1", ["the red car", "blue"], ["the red bus", "blue"], [2 / 3, 1]),
        ("json_valid", ['{"a": 1}', "[1]", "a: 1"], [None] * 3, [1, 1, 0]),
        (
            "exact_match",
            [[{"role": "assistant", "content": "Paris"}]],  # conversational completions
            ["Paris"],
            [1],
        ),
    ],
)
def test_builtin_rewards(name, completions, answers, expected):
    got = resolve(name)(completions, answer=answers)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("objective", "rows", "ok"),
    [
        ("kto", kto_rows(4), True),
        ("kto", preferences(4), True),  # TRL unpairs pairs for KTO
        ("kto", chats(4), False),
        ("orpo", preferences(4), True),
        ("orpo", kto_rows(4), False),
        ("grpo", chats(4), True),
        ("grpo", preferences(4), False),
        ("grpo", [{"prompt": f"Q{i}?", "answer": str(i)} for i in range(4)], True),
        ("sft", [{"prompt": f"Q{i}?", "answer": str(i)} for i in range(4)], False),
        ("sft", kto_rows(4), False),
    ],
)
def test_each_objective_trains_only_on_its_kinds(tmp_path, objective, rows, ok):
    src = write_jsonl(tmp_path / "train.jsonl", rows)
    if ok:
        assert prepare(src, "trl", tmp_path / "out.jsonl", objective=objective).exists()
    else:
        with pytest.raises(
            SpecError, match=rf"train\.jsonl:1: error: 4 \w+ examples in a {objective} job"
        ):
            prepare(src, "trl", tmp_path / "out.jsonl", objective=objective)


@pytest.mark.parametrize("column", ["answer", "solution", "ground_truth"])
def test_builtin_rewards_read_the_reference_column_the_data_has(column):
    got = resolve("exact_match")(["4", "5"], **{column: ["4", "4"], "difficulty": [1, 2]})
    assert got == [1.0, 0.0]
    assert resolve("contains")(["4"]) == [0.0]  # no reference: nothing to compare with


def test_prompt_only_rows_keep_their_columns_for_the_rewards(tmp_path):
    """TRL's prompt-only type, plain and conversational: written for the TRL worker with every
    extra column, refused by formats that would need an answer, checked for mixed kinds."""
    import json

    from gateway.data.convert import convert
    from gateway.data.formats import load
    from gateway.data.validate import check_file

    talk = [{"role": "user", "content": "What is 2+2?"}]
    rows = [{"prompt": talk, "answer": "4", "level": 1}, {"prompt": talk, "solution": "4"}]
    src = write_jsonl(tmp_path / "train.jsonl", rows)
    out = prepare(src, "trl", tmp_path / "out.jsonl", objective="grpo")
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert written == rows
    plain = write_jsonl(tmp_path / "plain.jsonl", [{"prompt": "2+2=", "answer": "4"}])
    assert json.loads(prepare(plain, "trl", tmp_path / "p.jsonl").read_text()) == {
        "prompt": "2+2=",
        "answer": "4",
    }
    with pytest.raises(Exception, match="prompt-only form"):
        convert(load(src).examples, "messages", tmp_path / "m.jsonl")
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [*rows, {"prompt": "2+2=", "answer": "4"}])
    found = [f.message for f in check_file(load(mixed), objective="grpo")]
    assert any(
        "mixes plain and conversational prompts (1 plain, 2 conversational)" in m for m in found
    )
    bare = write_jsonl(
        tmp_path / "bare.jsonl",
        [{"prompt": "hi"}, {"prompt": [*talk, {"role": "assistant", "content": "x"}]}],
    )
    found = [f.message for f in check_file(load(bare), objective="grpo")]
    assert any("ends on an assistant turn" in m for m in found)
    assert any("2 prompt(s) without answer, solution, ground_truth" in m for m in found)


def test_one_list_of_objectives():
    from gateway.spec import Objective
    from gateway.spec.objectives import FACTS, OBJECTIVES

    assert Objective.__args__ == OBJECTIVES == tuple(FACTS)


def test_json_schema_reward_reads_its_schema_beside_the_data(tmp_path):
    pytest.importorskip("jsonschema")
    (tmp_path / "answer.schema.json").write_text(
        '{"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}'
    )
    reward = resolve("json_schema(answer.schema.json)", tmp_path)
    assert reward(['{"city": "Oslo"}', '{"town": "Oslo"}', "Oslo", '{"city": 3}']) == [1, 0, 0, 0]
    assert name_problem("json_schema(answer.schema.json)") is None
    with pytest.raises(ValueError, match="cannot read the schema"):
        resolve("json_schema(missing.json)", tmp_path)
