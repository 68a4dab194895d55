"""The regression's guards without a model: the canary refuses a backend whose log-probs are
all alike, and accepts one that ranks the choices; a lettered twin asks and scores by letter."""

from __future__ import annotations

import pytest

from gateway.errors import TunegateError
from gateway.evaluate.lm_models import Backend, _Lettered, canary


@pytest.fixture(autouse=True)
def _needs_lm_eval():
    """Every test here needs lm_eval (a skip on the fixture, not on the module)."""
    pytest.importorskip("lm_eval")


class _Flat:
    def loglikelihood(self, requests, disable_tqdm=False):
        return [(-1.0, False) for _ in requests]


class _Ranks(_Flat):
    def loglikelihood(self, requests, disable_tqdm=False):
        return [(-float(len(r.args[1])), False) for r in requests]


def test_canary_refuses_flat_log_probs_and_skips_chat_backends():
    with pytest.raises(TunegateError, match="no prompt log-probabilities"):
        canary(_Flat(), Backend("x", True, False))
    canary(_Ranks(), Backend("x", True, False))
    canary(_Flat(), Backend("chat", False, True))  # no log-probs claimed: nothing to check


class _Task:
    def doc_to_text(self, doc, doc_to_text=None):
        return doc["q"]

    def doc_to_choice(self, doc, doc_to_choice=None):
        return doc["choices"]

    def doc_to_target(self, doc, doc_to_target=None):
        return doc["answer"]


class _Twin(_Lettered, _Task):
    pass


@pytest.mark.parametrize(
    ("answer", "reply", "acc", "unparsed"),
    [
        (1, "B", 1.0, 0.0),
        (1, "The answer is B.", 1.0, 0.0),
        (1, "A", 0.0, 0.0),
        (2, "I think C", 1.0, 0.0),
        ("four", " B) four", 1.0, 0.0),
        (0, "no idea", 0.0, 1.0),  # no letter counts wrong, never as choice A
        ([2], "C", 1.0, 0.0),
    ],
)
def test_lettered_twin_scores_the_letter(answer, reply, acc, unparsed):
    twin = _Twin()
    doc = {"q": "2 plus 2?", "choices": ["three", "four", "five"], "answer": answer}
    prompt = twin.doc_to_text(doc)
    assert "A. three\nB. four\nC. five" in prompt
    assert twin.process_results(doc, [reply]) == {"acc": acc, "unparsed": unparsed}
