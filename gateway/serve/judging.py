"""The judge on shadow pairs (`tunegate ab start --shadow --judge URL#MODEL`): for a sampled
share of the requests the incumbent answered and the candidate answered in shadow, a judge
compares the two answers in both orders (`gateway.evaluate.judge`: a JSON-schema verdict,
temperature 0), and each side gets a `judge` score (1 a win, 0 a loss, 0.5 a tie or orders
that disagree). Each pair's cost is estimated before the calls and the pair skipped once the
experiment's judge spend would pass its `max_usd` (`gateway.serve.spend`); the estimate is metered as its own usage
row (arm `judge`), so the judge's bill is seen beside the arms'.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.evaluate import judge as j
from gateway.evaluate.generate import question_of
from gateway.journal.experiments import Experiment, Experiments
from gateway.journal.serving import UsageRecord
from gateway.serve.spend import Spend
from gateway.serve.split import position

SCORES = {"a": (1.0, 0.0), "b": (0.0, 1.0)}  # outcome -> (incumbent, candidate)


def judge_pair(
    spend: Spend,
    exp: Experiment,
    body: dict[str, Any],
    request_id: str,
    incumbent: str,
    candidate: str,
) -> UsageRecord | None:
    """Judge one shadow pair if the experiment asks and its budget allows; the judge call's
    usage record (None when this pair is not judged). Runs in a worker thread."""
    how = exp.settings.get("judge")
    if not how or position(exp.id + ":judge", request_id) >= float(how.get("sample") or 1.0):
        return None
    question = question_of(body.get("messages") or []) or str(body.get("prompt") or "")
    rubric = j.parse_rubric(how.get("rubric"))
    shown = [
        j.pairwise_prompt(question, incumbent, candidate, rubric),
        j.pairwise_prompt(question, candidate, incumbent, rubric),
    ]
    usd = j.estimate_usd(shown, 1, j.JudgePrice.parse(how.get("price")))
    if not spend.reserve(exp.id, "judge", usd, float(how["max_usd"])):
        return None
    url, _, model = str(how["target"]).partition("#")
    start = time.perf_counter()
    status, error = 200, None
    try:
        ask = j.http_ask(url.rstrip("/"), model)
        (result,) = j.pairwise([(0, question, incumbent, candidate)], ask, rubric)
        inc, cand = SCORES.get(result.outcome, (0.5, 0.5))
        kept = Experiments(spend.store)
        kept.add_feedback(request_id, inc, "judge", None)
        kept.add_feedback(f"{request_id}-shadow", cand, "judge", None)
    except Exception as exc:  # a judge that fails is recorded, never raised
        status, error = 502, f"{type(exc).__name__}: {exc}"[:500]
    return UsageRecord(
        request_id=f"{request_id}-judge",
        ts=time.time(),
        model=model[:200],
        route="chat",
        status=status,
        latency_ms=(time.perf_counter() - start) * 1000,
        cost_usd=usd,
        error=error,
        experiment_id=exp.id,
        arm="judge",
    )
