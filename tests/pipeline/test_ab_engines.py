"""Live A/B between two real engines: a tiny Llama's base GGUF and its fine-tuned GGUF, each in
llama-cpp-python's server started by the gateway, behind one alias, driven by the official
`openai` SDK. The split holds its share and its users; each arm's answers are that engine's own;
a planted win (references that only the fine-tune matches) promotes it by itself, a planted loss
rolls the next candidate back, and a judge served by a third engine compares shadow pairs."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("openai")
pytest.importorskip("uvicorn")
pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")

import openai

from gateway.facade import ab
from gateway.facade.deploy import deploy
from gateway.journal.serving import ServeStore
from gateway.serve import running
from gateway.serve.registry import REFRESH_S
from tests.support.job_files import chats
from tests.support.polling import until
from tests.support.tiny_models import lora_adapter

ASK = {"max_tokens": 6, "temperature": 0}


@pytest.fixture(autouse=True)
def _cache(converter_cache, monkeypatch):
    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(converter_cache))
    monkeypatch.setenv("TUNEGATE_AB_CHECK_S", "0.5")


def _ggufs(tiny_sp, root):
    from exporters.gguf import convert
    from gateway.facade.export import export

    # scale 4: the greedy answers change (see test_eval_task); f32 and unverified for the same
    # reason as there: the point here is two engines that answer differently
    adapter = lora_adapter(tiny_sp, root / "lora", r=8, lora_alpha=16, scale=4.0)
    tuned = export(adapter, "gguf", quant="f32", out=root / "tuned", verify=False).files[0]
    base = convert(tiny_sp, root / "base.gguf", outtype="f32")[0]
    return base, tuned


def _questions(client: openai.OpenAI) -> list[tuple[list[dict], str, str]]:
    """(messages, base's answer, fine-tune's answer) for prompts the two answer differently,
    asked of each deployment by name (no experiment)."""
    found = []
    for row in chats(24, seed=11):
        messages = row["messages"][:2]
        got = [
            client.chat.completions.create(model=m, messages=messages, **ASK)
            .choices[0]
            .message.content
            for m in ("tiny-base", "tiny-tuned")
        ]
        if got[0] != got[1]:
            found.append((messages, got[0], got[1]))
    assert len(found) >= 4, "the fine-tune should answer differently from its base"
    return found


def _ask(client, questions, i: int, reference_of) -> tuple[str, str]:
    messages, base, tuned = questions[i % len(questions)]
    raw = client.chat.completions.with_raw_response.create(
        model="shelf",
        messages=messages,
        user=f"user-{i}",
        metadata={"reference": reference_of(base, tuned)},
        **ASK,
    )
    text = raw.parse().choices[0].message.content
    return raw.headers["x-tunegate-deployment"], {base: "base", tuned: "tuned"}.get(text, text)


def _side_rows() -> list:
    """The shadow and judge records, for a failure's message."""
    with ServeStore() as store:
        rows = store.usage()
    return [(r.request_id, r.arm, r.status, r.error) for r in rows if r.arm in ("shadow", "judge")]


def _decided(ref: str) -> ab.Experiment:
    until(lambda: not ab.status(ref).experiment.running, timeout=30)
    return ab.status(ref).experiment


def test_two_llama_cpp_engines_split_promote_roll_back_and_judge(tiny_sp, tmp_path):
    from exporters.deploy.process import free_port

    base_gguf, tuned_gguf = _ggufs(tiny_sp, tmp_path)
    base = deploy(str(base_gguf), "llamacpp", name="tiny-base")
    tuned = deploy(str(tuned_gguf), "llamacpp", name="tiny-tuned")
    deploy(str(base_gguf), "llamacpp", name="tiny-judge")
    with ServeStore() as store:
        store.set_alias("shelf", ["tiny-base"])
    port = free_port()
    with running(port=port) as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        questions = _questions(client)

        # 1. a planted win: the references are the fine-tune's answers
        won = ab.start("shelf", "tiny-tuned", 0.4, scorer="exact", auto=ab.Auto(min_requests=12))
        time.sleep(REFRESH_S + 0.5)  # a running gateway sees it within REFRESH_S
        seen: dict[int, str] = {}
        for i in range(60):
            dep_id, said = _ask(client, questions, i, lambda b, t: t)
            seen[i] = dep_id
            # each arm's answer is its own engine's, never the other's
            assert said == ("tuned" if dep_id == tuned.id else "base"), (dep_id, said)
            if not ab.status(won.id).experiment.running:
                break
        n = len(seen)
        on_candidate = sum(d == tuned.id for d in seen.values())
        assert abs(on_candidate - 0.4 * n) < 4 * (n * 0.4 * 0.6) ** 0.5  # within 4 sd
        done = _decided(won.id)
        assert done.state == "promoted" and done.decision["by"] == "auto"
        assert "scorer" in done.decision["why"] and "candidate wins" in done.decision["why"]
        with ServeStore() as store:
            assert store.aliases()["shelf"] == [tuned.id, "tiny-base"]
        assert {_ask(client, questions, i, lambda b, t: t)[0] for i in range(6)} == {tuned.id}

        # 2. a planted loss: the base, now the candidate, misses every reference
        # (30 a side: the 48 requests that check the split cannot decide it, so the check
        # never races the decision)
        lost = ab.start("shelf", "tiny-base", 0.5, scorer="exact", auto=ab.Auto(min_requests=30))
        time.sleep(REFRESH_S + 0.5)  # a running gateway sees it within REFRESH_S
        first = {i: _ask(client, questions, i, lambda b, t: t)[0] for i in range(24)}
        assert first == {i: _ask(client, questions, i, lambda b, t: t)[0] for i in range(24)}
        for i in range(24, 200):
            _ask(client, questions, i, lambda b, t: t)
            if not ab.status(lost.id).experiment.running:
                break
        done = _decided(lost.id)
        assert done.state == "rolled_back" and "candidate loses" in done.decision["why"]
        with ServeStore() as store:
            assert store.aliases()["shelf"] == [tuned.id, "tiny-base"]  # as it was

        # 3. shadow copies judged by a third engine; the clients keep the incumbent's answers
        judge = ab.Judge(f"{url}#tiny-judge", sample=1.0)
        shadowed = ab.start("shelf", "tiny-base", 1.0, shadow=True, judge=judge)
        time.sleep(REFRESH_S + 0.5)  # a running gateway sees it within REFRESH_S
        answered = {_ask(client, questions, i, lambda b, t: t) for i in range(8)}
        assert answered == {(tuned.id, "tuned")}
        judged = until(
            lambda: (s := ab.status(shadowed.id).signals.get("judge")) and s.n_candidate >= 8 and s,
            timeout=60,
        )
        assert judged, _side_rows()
        assert judged.n_incumbent == judged.n_candidate == 8  # every pair, in both orders
        ab.stop(shadowed.id)
    with ServeStore() as store:
        rows = store.usage()
    judge_rows = [r for r in rows if r.arm == "judge"]  # one a pair, with its estimated cost
    assert len(judge_rows) == 8 and all(r.status == 200 for r in judge_rows)
    # its two calls a pair went through the gateway like any client's
    assert len([r for r in rows if r.model == "tiny-judge" and r.arm is None]) == 16
    shadow_rows = [r for r in rows if r.arm == "shadow"]
    assert len(shadow_rows) == 8 and {r.deployment_id for r in shadow_rows} == {base.id}
