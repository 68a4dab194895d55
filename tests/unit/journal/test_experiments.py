"""Experiments in the journal: one running per alias, a share that changes, and an end that
happens once (the alias rewritten in the same transaction) however many terminals race."""

from __future__ import annotations

import threading

import pytest

from gateway.errors import ServeError
from gateway.journal.experiments import Experiments
from gateway.journal.serving import ServeStore


def test_one_running_experiment_per_alias_and_one_ending():
    with ServeStore() as store:
        store._write(
            "INSERT INTO aliases (name, targets_json, updated_at) VALUES (?,?,?)",
            [("voice", '["dep-a"]', 0.0)],
        )
        exps = Experiments(store)
        exp = exps.start("voice", "dep-a", "dep-b", 0.1, {"margin": 0})
        with pytest.raises(ServeError, match="already runs"):
            exps.start("voice", "dep-a", "dep-c", 0.1, {})
        assert exps.set_share("voice", 0.25).share == 0.25
        with pytest.raises(ServeError, match="not a fraction"):
            exps.set_share("voice", 1.5)
        results: list[str] = []

        def end(state: str, targets: list[str] | None) -> None:
            try:
                exps.end(exp.id, state, {"by": state}, alias_targets=targets)
                results.append(state)
            except ServeError as err:
                results.append(f"refused: {err.message}")

        racers = [
            threading.Thread(target=end, args=("promoted", ["dep-b", "dep-a"])),
            threading.Thread(target=end, args=("rolled_back", None)),
        ]
        for t in racers:
            t.start()
        for t in racers:
            t.join()
        winners = [r for r in results if not r.startswith("refused")]
        assert len(winners) == 1 and len(results) == 2
        (loser,) = [r for r in results if r.startswith("refused")]
        assert winners[0] in loser  # the loser is told how it ended
        final = exps.get("voice")
        assert final.state == winners[0] and final.decision == {"by": winners[0]}
        want = ["dep-b", "dep-a"] if winners[0] == "promoted" else ["dep-a"]
        assert store.aliases()["voice"] == want
        # ended: a new experiment may start on the alias
        assert exps.start("voice", "dep-a", "dep-c", 0.5, {}).running
        exps.add_feedback("req-" + "0" * 32, 1.0, "app", None)
        with pytest.raises(ServeError, match="outside 0-1"):
            exps.add_feedback("req-" + "0" * 32, 2.0, "app", None)


def test_a_shadow_budget_stops_the_copies():
    """`--max-usd`: once the shadow copies have cost the cap (earlier runs included), no more
    are queued; a full queue drops a copy instead of waiting."""
    import asyncio

    from gateway.journal.serving import UsageRecord
    from gateway.serve.shadow import QUEUE, Shadow

    with ServeStore() as store:
        exps = Experiments(store)
        exp = exps.start("voice", "dep-a", "dep-b", 1.0, {"shadow": True, "max_usd": 0.5})
        store.add_usage(
            [UsageRecord("req-1-shadow", 1.0, "voice", "chat", 200, 5.0, cost_usd=0.6,
                         experiment_id=exp.id, arm="shadow")]
        )  # fmt: skip

        async def offers() -> tuple[bool, bool, int]:
            shadow = Shadow(None, store, lambda rec: None, None)  # type: ignore[arg-type]
            capped = shadow.offer(exp, {"model": "voice"}, "chat", "req-2")
            free = exps.start("free", "dep-a", "dep-b", 1.0, {"shadow": True})
            queued = [
                shadow.offer(free, {"model": "free"}, "chat", f"r{i}") for i in range(QUEUE + 3)
            ]
            return capped, all(queued[:QUEUE]), shadow.dropped

        capped, first_fit, dropped = asyncio.run(offers())
        assert capped is False and first_fit and dropped == 3


def test_kept_bodies_expire_after_the_retention():
    with ServeStore() as store:
        exps = Experiments(store)
        exp = exps.start("voice", "dep-a", "dep-b", 1.0, {"log_bodies": {"retention_days": 1}})
        exps.add_body(exp, "req-old", "incumbent", '["old"]', "a")
        store._write(
            "UPDATE experiment_bodies SET created_at = created_at - 2 * 86400"
            " WHERE request_id = 'req-old'",
            [()],
        )
        exps.add_body(exp, "req-new", "candidate", '["new"]', "b")
        assert [b["request_id"] for b in exps.bodies("voice")] == ["req-new"]
