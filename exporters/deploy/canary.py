"""The isolation canary: proof that models sharing one engine do not answer for each other.

Sharing a base between adapters is where models leak into each other: on this kind of machine
vLLM's CPU build answered a base request batched with adapter requests with an adapter's exact
text, and llama.cpp's server answers a request without a full `lora` scale list with neither the
base nor any adapter (llama.cpp#28674; ../shared/reference/serving-scale.md §2). So every member
of an engine group is fingerprinted where it cannot leak (its *reference*: an engine holding only
it, recorded when it joins), then in the shared engine alone, then with every member asking at
once. A fingerprint is the greedy first token's top log-probabilities, not the text: a weak
adapter that leaves the text alone still moves them, and near ties cannot flip a comparison of
numbers the way they flip an argmax.

A member fails when its answer in the shared engine is not its reference's; the evidence names
the member whose reference it is closest to (a leak) or says it matches none (a broken scale).
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass, field
from typing import Any

import httpx

PROMPTS = (
    "Name a colour.",
    "Write one word about the sea.",
    "What is 2 + 3?",
    "Say hello in French.",
)
TOP = 5  # log-probabilities kept per fingerprint
SAME = 2e-3  # nats: one fingerprint is another's (fp32 batch numerics stay far below this)
# an answer moved by up to this much under batching (bf16 kernels are not batch-invariant) is
# still its own when every other member's reference is at least twice as far: a warning, not a
# failure. A member closer to another's reference than to its own always fails.
NOISE = 0.25
ROUNDS = 2  # times every member asks every prompt in the concurrent phase


@dataclass(frozen=True)
class Probe:
    """One member as the engine tells it apart: its name and what its requests carry (a
    llama.cpp `lora` scale list, or the model name vLLM serves it under)."""

    name: str
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Print:
    """A greedy answer's first-token distribution (top log-probabilities) and its text."""

    text: str
    top: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "top": self.top}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Print:
        return cls(str(data["text"]), {str(k): float(v) for k, v in data["top"].items()})


def distance(a: Print, b: Print) -> float:
    """The largest log-probability difference over both top lists (a token missing from one
    list counts at that list's floor, a bound on its true value)."""
    if not a.top or not b.top:
        return 0.0 if a.text == b.text else float("inf")
    floor_a, floor_b = min(a.top.values()), min(b.top.values())
    tokens = set(a.top) | set(b.top)
    return max(abs(a.top.get(t, floor_a) - b.top.get(t, floor_b)) for t in tokens)


def fingerprint(
    client: httpx.Client, url: str, probe: Probe, prompt: str, max_tokens: int = 6
) -> Print:
    """One greedy request with log-probabilities, through the engine's chat API."""
    body = {
        "model": probe.name,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": TOP,
        **probe.body,
    }
    res = client.post(url.rstrip("/") + "/chat/completions", json=body, timeout=120)
    res.raise_for_status()
    choice = res.json()["choices"][0]
    content = ((choice.get("logprobs") or {}).get("content") or [{}])[0]
    top = {str(t["token"]): float(t["logprob"]) for t in content.get("top_logprobs") or []}
    return Print(choice["message"]["content"] or "", top)


def alone(url: str, headers: dict[str, str], probes: list[Probe]) -> dict[str, list[Print]]:
    """Every member's fingerprints, one request at a time."""
    with httpx.Client(headers=headers) as client:
        return {p.name: [fingerprint(client, url, p, q) for q in PROMPTS] for p in probes}


def together(
    url: str, headers: dict[str, str], probes: list[Probe], rounds: int = ROUNDS
) -> dict[str, list[list[Print]]]:
    """Every member asking every prompt at once (`rounds` times), as mixed batches form."""
    jobs = [(p, i, q) for _ in range(rounds) for p in probes for i, q in enumerate(PROMPTS)]
    out: dict[str, list[list[Print]]] = {p.name: [[] for _ in PROMPTS] for p in probes}
    with (
        httpx.Client(headers=headers, limits=httpx.Limits(max_connections=len(jobs))) as client,
        concurrent.futures.ThreadPoolExecutor(min(32, len(jobs))) as pool,
    ):
        futures = {pool.submit(fingerprint, client, url, p, q): (p.name, i) for p, i, q in jobs}
        for future, (name, i) in futures.items():
            out[name][i].append(future.result())
    return out


@dataclass
class CanaryReport:
    members: list[str]
    passed: bool = True
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    requests: int = 0

    def summary(self) -> str:
        head = f"isolation canary over {', '.join(self.members)} ({self.requests} requests): "
        if self.passed:
            return head + "passed" + (f" ({'; '.join(self.warnings)})" if self.warnings else "")
        return head + "FAILED: " + "; ".join(self.failures)

    def to_json(self) -> dict[str, Any]:
        return {
            "members": self.members,
            "passed": self.passed,
            "failures": self.failures,
            "warnings": self.warnings,
            "requests": self.requests,
        }


def judge(
    references: dict[str, list[Print]],
    solo: dict[str, list[Print]],
    mixed: dict[str, list[list[Print]]],
) -> CanaryReport:
    """Hold every shared-engine answer to its member's reference (pure: tested on its own)."""
    report = CanaryReport(sorted(references))
    report.requests = sum(len(v) for v in solo.values())
    report.requests += sum(len(r) for v in mixed.values() for r in v)
    for a in report.members:
        for b in report.members:
            if a < b and _max_distance(references[a], references[b]) < SAME:
                report.warnings.append(
                    f"{a} and {b} answer alike on every canary prompt, so a leak between them "
                    "could not show"
                )
    drift = 0.0
    for name in report.members:
        answers = [(f"alone, prompt {i + 1}", p) for i, p in enumerate(solo.get(name, []))]
        answers += [
            (f"with the others, prompt {i + 1}", p)
            for i, runs in enumerate(mixed.get(name, []))
            for p in runs
        ]
        for where, got in answers:
            prompt = int(where.rsplit(" ", 1)[1]) - 1
            problem = _misplaced(name, where, got, references, prompt)
            if problem:
                report.failures.append(problem)
                break  # one piece of evidence per member is enough
            drift = max(drift, distance(got, references[name][prompt]))
    if drift >= SAME and not report.failures:
        report.warnings.append(
            f"answers moved up to {drift:.3f} nats under batching (the engine's numerics), "
            "every one still nearest its own reference by a factor of two"
        )
    report.passed = not report.failures
    return report


def _max_distance(a: list[Print], b: list[Print]) -> float:
    return max((distance(x, y) for x, y in zip(a, b, strict=True)), default=0.0)


def _misplaced(
    name: str, where: str, got: Print, references: dict[str, list[Print]], prompt: int
) -> str | None:
    own = distance(got, references[name][prompt])
    if own < SAME:
        return None
    others = {m: distance(got, refs[prompt]) for m, refs in references.items() if m != name}
    nearest = min(others, key=others.__getitem__) if others else None
    if own < NOISE and (nearest is None or others[nearest] > 2 * own):
        return None  # the engine's numerics, not another member (counted in `judge`)
    if nearest is not None and others[nearest] < own:
        return (
            f"{name} ({where}) answered as {nearest} does: first-token log-probs within "
            f"{others[nearest]:.4f} of {nearest}'s and {own:.4f} from its own "
            f"(text {got.text!r})"
        )
    return (
        f"{name} ({where}) answered unlike itself: first-token log-probs {own:.4f} from its "
        f"reference and unlike every other member (text {got.text!r})"
    )


def check(
    url: str, headers: dict[str, str], probes: list[Probe], references: dict[str, list[Print]]
) -> CanaryReport:
    """Run the canary against a live shared engine at `url` (…/v1)."""
    missing = [p.name for p in probes if p.name not in references]
    if missing:
        report = CanaryReport(sorted(p.name for p in probes), passed=False)
        report.failures.append(f"no reference answers for {', '.join(missing)}")
        return report
    refs = {p.name: references[p.name] for p in probes}
    return judge(refs, alone(url, headers, probes), together(url, headers, probes))
