"""A hosted teacher on loopback: OpenAI's chat-completions API as documented, for the official
`openai` SDK, with injected faults (429 with retry-after, 5xx, dropped connections) and answers
scripted by what the prompt asks for, so the rejection rules have known bad answers to drop:

- `[refuse]` -> a refusal; `[long]` -> cut at max_tokens (finish reason `length`);
  `[empty]` -> an empty answer; `[prose]` -> text that is not JSON;
  `[twin]` -> the same answer for every such prompt (near-duplicate examples)
- anything else -> a JSON object naming a shelf

It counts what it *delivered* per prompt (a paid answer). With `hold_after = K`, every call
after the K-th delivered answer waits for `release` and is then abandoned (never delivered):
the calls a killed client had in flight.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

from tests.fakes._server import FakeAPI, FakeServer, Faults, Reply, Request, openai_chat

KEY = "sk-teacher-test-0123456789abcdef"


def scripted(question: str) -> tuple[str, str]:
    """(answer, finish reason) for a prompt."""
    if "[refuse]" in question:
        return "I'm sorry, but I can't help with that request.", "stop"
    if "[long]" in question:
        return '{"shelf": "four, and then there is the matter of', "length"
    if "[empty]" in question:
        return "", "stop"
    if "[prose]" in question:
        return "It is on shelf four, I believe.", "stop"
    if "[twin]" in question:
        return '{"shelf": 4, "aisle": "north", "note": "ask at the desk for the key"}', "stop"
    return json.dumps({"shelf": len(question) % 7, "asked": question[:40]}), "stop"


class TeacherFake(FakeAPI):
    def __init__(self, faults: Faults | None = None):
        self.server = FakeServer([("POST", r"/v1/chat/completions", self.chat)], faults)
        self.paid: Counter[str] = Counter()  # question -> answers delivered
        self.calls: Counter[str] = Counter()  # question -> calls that reached the model
        self.hold_after: int | None = None
        self.release = threading.Event()
        self.held: list[str] = []
        self._lock = threading.Lock()

    def sdk_env(self) -> dict[str, str]:
        return {"OPENAI_BASE_URL": self.base_url + "/v1", "OPENAI_API_KEY": KEY}

    @property
    def url(self) -> str:
        return self.base_url + "/v1"

    def chat(self, req: Request) -> Reply:
        body = req.json()
        question = str(body["messages"][-1]["content"])
        with self._lock:
            self.calls[question] += 1
            hold = self.hold_after is not None and sum(self.paid.values()) >= self.hold_after
            if hold:
                self.held.append(question)
        if hold:
            self.release.wait(60)
            return Reply(500, {"error": {"message": "abandoned: the client went away"}})
        words = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        with self._lock:
            self.paid[question] += 1
        if body.get("tools"):
            return tool_call(body, question, words)
        answer, reason = scripted(question)
        return openai_chat(
            body["model"], answer, reason, (words, max(1, len(answer.split()))), body
        )


def tool_call(body: dict[str, Any], question: str, words: int) -> Reply:
    """A tool-calling answer: the first offered function, called with the drill's number
    (`[badtool]`: arguments that are not JSON)."""
    name = body["tools"][0]["function"]["name"]
    number = "".join(c for c in question if c.isdigit()) or "0"
    args = "{not json" if "[badtool]" in question else json.dumps({"drill": int(number)})
    call = {
        "id": "call_" + number,
        "type": "function",
        "function": {"name": name, "arguments": args},
    }
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    return Reply(200, {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": words, "completion_tokens": 12, "total_tokens": words + 12},
    })  # fmt: skip


def prompts_file(path: Any, questions: list[str]) -> Any:
    """A prompt-only JSONL file of `questions`."""
    path.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in questions))
    return path


class JudgeFake(FakeAPI):
    """A judge with a known taste: it passes an answer whose shelf number is even, replying as
    the JSON schema asks; it counts its verdicts."""

    def __init__(self) -> None:
        self.server = FakeServer([("POST", r"/v1/chat/completions", self.chat)])
        self.verdicts = 0

    def sdk_env(self) -> dict[str, str]:
        return {}

    def chat(self, req: Request) -> Reply:
        body = req.json()
        prompt = str(body["messages"][-1]["content"])
        assert body["response_format"]["schema"]["required"]
        answer = prompt.rsplit("Answer to grade:\n", 1)[-1]
        try:
            passed = json.loads(answer)["shelf"] % 2 == 0
        except (ValueError, KeyError, TypeError):
            passed = False
        self.verdicts += 1
        verdict = json.dumps({"pass": passed, "reason": "even shelves only"})
        return openai_chat(body["model"], verdict, "stop", (len(prompt.split()), 9), body)
