"""KTO, ORPO and GRPO trained for real on CPU: a tiny Llama built offline, the TRL worker, the
metrics it writes, and an adapter that changes the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiny_models import logits_of

pytest.importorskip("trl")
pytest.importorskip("peft")

from gateway.facade.launch import launch
from providers.jobdir import JobDir
from tests.support.job_files import local_job, preferences, write_jsonl


def _run(spec) -> tuple[list[dict], Path]:
    job = launch(spec, backend="local")
    rec = job.wait(interval=0.5)
    assert rec.state == "succeeded", rec.error
    return JobDir(Path(rec.remote["jobdir"])).metrics(), Path(job.artifact().uri)


@pytest.mark.parametrize(("objective", "pairs"), [("kto", False), ("kto", True), ("orpo", True)])
def test_preference_objectives_train_and_change_the_model(tmp_path, tiny, objective, pairs):
    spec = local_job(tmp_path, tiny, objective, n=32, valid=4)
    if pairs and objective == "kto":  # paired data, unpaired for KTO by the worker
        write_jsonl(tmp_path / "train.jsonl", preferences(32))
        write_jsonl(tmp_path / "valid.jsonl", preferences(4, 1000))
    metrics, adapter = _run(spec)
    losses = [m["loss"] for m in metrics if m.get("loss") is not None]
    assert len(losses) >= 3 and losses[-1] < losses[0], losses
    assert any(m.get("eval_loss") is not None for m in metrics)
    assert (logits_of(tiny, adapter) - logits_of(tiny, None)).abs().max().item() > 1e-3


def _grpo_rewards(tmp_path: Path, tiny: Path, rewards: list[str], **kw) -> list[float]:
    """A GRPO job on the toy task (8 completions of up to 8 tokens per prompt); its rewards."""
    settings = {"n": 16, "epochs": 2, "learning_rate": 0.03, **kw}
    spec = local_job(
        tmp_path,
        tiny,
        "grpo",
        valid=0,
        rewards=rewards,
        batch_size=8,
        grpo_generations=8,
        grpo_max_completion=8,
        **settings,
    )
    metrics, adapter = _run(spec)
    delta = (
        (logits_of(tiny, adapter) - logits_of(tiny, None)).abs().max().item()
        if (adapter / "adapter_config.json").exists()
        else None
    )
    assert delta is None or delta > 1e-3  # an adapter changes the model
    return [m["reward"] for m in metrics if m.get("reward") is not None]


def test_grpo_with_a_user_reward_trains_an_adapter(tmp_path, tiny):
    (tmp_path / "my_rewards.py").write_text(
        "def brevity(completions, **kwargs):\n"
        "    return [1.0 / (1 + len(str(c))) for c in completions]\n"
    )
    rewards = _grpo_rewards(tmp_path, tiny, ["regex(e)", "my_rewards:brevity"], n=8)
    assert len(rewards) >= 3 and all(0 <= r <= 2 for r in rewards)


def test_grpo_with_a_builtin_reward_raises_the_mean_reward(tmp_path, tiny):
    """The toy task: put the letter e in the answer. Full fine-tuning of the tiny model learns it
    in a few dozen steps (measured: ~0.55 -> 1.0)."""
    rewards = _grpo_rewards(
        tmp_path, tiny, ["regex(e)"], method="full", epochs=4, learning_rate=0.01
    )
    quarter = max(1, len(rewards) // 4)
    first, last = sum(rewards[:quarter]) / quarter, sum(rewards[-quarter:]) / quarter
    assert last >= first + 0.2, rewards


def test_grpo_trains_on_prompt_only_data_and_its_rewards_read_the_columns(tmp_path, tiny):
    """TRL's prompt-only type as a GRPO user has it: a prompt, a reference `answer` and any
    other column. The rows train as they are; a user's reward gets the columns by name and a
    built-in one compares with `answer`; the plan prices the same file."""
    import json

    from gateway.facade.plan import plan

    rows = [
        {"prompt": [{"role": "user", "content": f"say {w}"}], "answer": w, "level": i % 3}
        for i, w in enumerate(["help", "desk", "tools", "saws", "drills", "hello"] * 2)
    ]
    (tmp_path / "my_rewards.py").write_text(
        "import json\n"
        "def saw(completions, answer, level, **kwargs):\n"
        f"    with open({str(tmp_path / 'seen.jsonl')!r}, 'a') as fh:\n"
        "        fh.write(json.dumps({'answer': answer, 'level': level}) + '\\n')\n"
        "    return [0.0 for _ in completions]\n"
    )
    spec = local_job(
        tmp_path,
        tiny,
        "grpo",
        valid=0,
        n=12,
        rewards=["contains", "my_rewards:saw"],
        batch_size=8,
        grpo_generations=4,
        grpo_max_completion=6,
    )
    write_jsonl(tmp_path / "train.jsonl", rows)
    local = next(o for o in plan(spec).offers if o.provider == "local")
    assert local.feasible, local.reason
    metrics, adapter = _run(spec)
    assert [m for m in metrics if m.get("reward") is not None]
    seen = [json.loads(line) for line in (tmp_path / "seen.jsonl").read_text().splitlines()]
    got = {(a, lv) for s in seen for a, lv in zip(s["answer"], s["level"], strict=True)}
    assert got and got <= {(r["answer"], r["level"]) for r in rows}
    assert (adapter / "adapter_config.json").exists()
