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
