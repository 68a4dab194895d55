"""Greedy answers from one resolved target, whatever runs it: transformers in-process (an
adapter or a model folder), llama-cpp-python's or mlx-lm's server started here (a GGUF, an MLX
folder), or an OpenAI-compatible URL (an endpoint, or `tunegate serve` for a deployment).
Answers are cached by (target fingerprint, prompt, max tokens) under
`$TUNEGATE_HOME/eval/cache`, so scoring again never generates again.

This module knows nothing of the journal or of `tunegate serve`'s app, so the export gate can
use it from the export path without an import cycle; `targets.resolve` turns what a user names
into a `Target`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporters.formats import GGUF, MLX
from gateway.catalog import tunegate_home
from gateway.data.formats import Example
from gateway.errors import SpecError, TunegateError
from gateway.util.progress import step_line

Messages = list[dict[str, Any]]
BATCH = 8  # prompts per in-process generate call


@dataclass(frozen=True)
class Answer:
    """One answer and the tokens it took (None where the engine does not say)."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def measured(self) -> bool:
        return self.prompt_tokens is not None and self.completion_tokens is not None


@dataclass
class Target:
    """A resolved target: what it is, the backend, and a fingerprint for the output cache."""

    ref: str
    backend: str
    kind: str  # hf | gguf | mlx | deployment | endpoint
    path: Path | None = None
    adapter: Path | None = None
    url: str | None = None
    model: str | None = None
    notes: list[str] = field(default_factory=list)
    job_id: str | None = None  # the job whose model this is, when tunegate trained it
    # how a deployment is reached: an engine to open for the run (it yields the URL), the
    # headers its URL wants (auth: never shown), or only the target's own chat
    opener: Callable[[], AbstractContextManager[str]] | None = field(
        default=None, repr=False, compare=False
    )
    headers: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    chat: Callable[[Messages, int], str] | None = field(default=None, repr=False, compare=False)

    def fingerprint(self) -> str:
        # a file run by an engine is its files: the model name the engine gives it once
        # started (`engine` sets it) must not move its cache
        model = "" if self.kind in (GGUF, MLX) else self.model or ""
        parts = [self.backend, self.kind, self.url or "", model]
        for p in (self.path, self.adapter):
            if p is not None:
                files = sorted(q for q in ([p] if p.is_file() else p.iterdir()) if q.is_file())
                parts += [f"{q.name}:{q.stat().st_size}:{q.stat().st_mtime_ns}" for q in files]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "backend": self.backend,
            "kind": self.kind,
            "path": str(self.path) if self.path else None,
            "adapter": str(self.adapter) if self.adapter else None,
            "model": self.model,
            "job_id": self.job_id,
        }


class Generator:
    """Greedy chat answers from one target; a context manager that starts and stops engines."""

    def __init__(self, target: Target):
        self.target = target
        self._stack = contextlib.ExitStack()
        self._model: Any = None
        self._url: str | None = None

    def __enter__(self) -> Generator:
        t = self.target
        if t.kind == "hf":
            self._model = _load_hf(t)
        elif t.kind in (GGUF, MLX):
            self._url = self._stack.enter_context(engine(t))
        elif t.opener is not None:
            self._url = self._stack.enter_context(t.opener())
        elif t.chat is None:
            self._url = t.url
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL (for a judge); in-process models have none."""
        if self._url is None:
            how = "speaks only its own API" if self.target.chat else "runs in-process"
            raise SpecError(
                f"{self.target.ref} {how} and cannot be a judge",
                fix="judge with an OpenAI-compatible target (a GGUF, URL#MODEL, an engine deployment)",
            )
        return self._url

    def answer(self, messages: Messages, max_tokens: int) -> str:
        return self.answer_batch([messages], max_tokens)[0]

    def answer_batch(self, batch: list[Messages], max_tokens: int) -> list[str]:
        """Answers to several prompts: one batched `generate` in-process (on a CPU, 8 short
        prompts cost little more than one), one request each to a server."""
        return [a.text for a in self.answers_with_usage(batch, max_tokens)]

    def answers_with_usage(self, batch: list[Messages], max_tokens: int) -> list[Answer]:
        """`answer_batch` with each answer's token usage: the engine's own `usage` for a
        server; for a model run in-process, its prompt and generated tokens (end token
        included, as engines count it)."""
        if self._model is not None:
            return _hf_answers(self._model, batch, max_tokens)
        if self._url is None and self.target.chat is not None:
            return [Answer(self.target.chat(m, max_tokens)) for m in batch]
        model = str(self.target.model or "default_model")
        headers = self.target.headers
        return [_chat(str(self._url), model, m, max_tokens, headers) for m in batch]


def post_chat(
    url: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """One chat completion request to an OpenAI-compatible endpoint; its first message."""
    return dict(_completion(url, body, headers)["choices"][0]["message"])


def _completion(
    url: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    import httpx

    try:
        res = httpx.post(url + "/chat/completions", json=body, headers=headers, timeout=600)
    except httpx.HTTPError as exc:
        raise TunegateError(f"cannot reach {url}: {exc}") from None
    if res.status_code >= 400:
        raise TunegateError(f"{url} answered HTTP {res.status_code}: {res.text[:300]}")
    return dict(res.json())


def _chat(
    url: str, model: str, messages: Messages, max_tokens: int, headers: dict[str, str]
) -> Answer:
    """One greedy chat completion and its usage; tool calls come back as their JSON."""
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    done = _completion(url, body, headers)
    message = done["choices"][0]["message"]
    usage = done.get("usage") or {}
    text = (
        json.dumps({"tool_calls": message["tool_calls"]})
        if message.get("tool_calls")
        else message.get("content") or ""
    )
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return Answer(text, prompt, completion)
    return Answer(text)


def export_target(ref: str, kind: str, path: Path) -> Target:
    """A GGUF file or MLX folder as a target: run by the engine of the target that serves it."""
    from exporters.deploy import engine_deployer

    return Target(ref, engine_deployer(kind).engine, kind, path=path.resolve())


@contextlib.contextmanager
def engine(t: Target, *, logits_all: bool = False) -> Iterator[str]:
    """llama-cpp-python's or mlx-lm's server on a free port, as `tunegate serve` runs them;
    `logits_all` keeps every prompt token's logits, which prompt log-probs (echo) need."""
    import dataclasses

    from exporters.deploy import engine_deployer
    from gateway.journal.deployments import Deployment

    deployer = engine_deployer(t.kind)
    dep = Deployment(f"eval-{t.fingerprint()}", deployer.target, "eval", str(t.path), "live")
    upstream = deployer.upstream(dep)
    if logits_all and upstream.logits_flag:
        upstream = dataclasses.replace(upstream, command=(*upstream.command, *upstream.logits_flag))
    t.model = upstream.model
    with upstream_url(dep, upstream) as url:
        yield url


@contextlib.contextmanager
def upstream_url(dep: Any, upstream: Any) -> Iterator[str]:
    """An engine upstream (`Upstream(kind="engine")`) started here for the run: its URL."""
    import httpx

    from exporters.deploy.engines import Engines
    from gateway.catalog import tunegate_home

    engines: Engines | None = None

    async def start() -> str:
        nonlocal engines
        async with httpx.AsyncClient() as client:
            engines = Engines(tunegate_home() / "eval", client)
            return await engines.url(dep.id, upstream)

    try:
        yield asyncio.run(start())
    finally:
        if engines is not None:
            engines.close()


def _load_hf(t: Target) -> Any:
    from gateway.catalog.extras import require

    require("torch", "transformers", what="evaluating a model folder in-process")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(t.path, dtype=torch.float32).eval()
    if t.adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, t.adapter).eval()
    own = t.adapter is not None and (t.adapter / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(t.adapter if own else t.path)
    return model, tokenizer


def _hf_answers(loaded: Any, batch: list[Messages], max_tokens: int) -> list[Answer]:
    """Greedy answers, left-padded into one batch (positions follow the attention mask, so a
    padded prompt answers as it would alone); each cut at its first end token."""
    import torch

    model, tok = loaded
    prompts = [
        list(tok.apply_chat_template(m, add_generation_prompt=True, return_dict=True)["input_ids"])
        for m in batch
    ]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    width = max(len(p) for p in prompts)
    ids = [[pad] * (width - len(p)) + p for p in prompts]
    mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            max_new_tokens=max_tokens,
            do_sample=False,
            pad_token_id=pad,
        )
    ends = model.generation_config.eos_token_id
    ends = set(ends if isinstance(ends, list) else [ends]) | {tok.eos_token_id}
    answers = []
    for prompt, row in zip(prompts, out, strict=True):
        new = row[width:].tolist()
        cut = next((i for i, t in enumerate(new) if t in ends), len(new))
        generated = cut + 1 if cut < len(new) else cut  # the end token is generated too
        text = tok.decode(new[:cut], skip_special_tokens=True)
        answers.append(Answer(text, len(prompt), generated))
    return answers


def question_of(msgs: list[dict[str, Any]]) -> str:
    return str(next((m.get("content") for m in reversed(msgs) if m.get("role") == "user"), ""))


def split(ex: Example) -> tuple[list[dict[str, Any]], str] | None:
    """(prompt messages, reference) of a chat example; None if it has no final answer."""
    msgs = list(ex.messages)
    if not msgs or msgs[-1].get("role") != "assistant":
        return None
    last = msgs[-1]
    ref = (
        json.dumps({"tool_calls": last["tool_calls"]})
        if last.get("tool_calls")
        else last.get("content") or ""
    )
    return msgs[:-1], ref


Pair = tuple[Example, tuple[Messages, str]]  # an example, and its (prompt, reference)


def held_out(data: Path, limit: int | None = None) -> tuple[list[Pair], int]:
    """The first `limit` examples of `data` that end in an assistant answer, each with its
    (prompt, reference), and how many examples had none; refused when none has one."""
    from gateway.data.formats import load

    loaded = load(Path(data))
    pairs = [(ex, s) for ex in loaded.examples if (s := split(ex)) is not None]
    skipped = len(loaded.examples) - len(pairs)
    pairs = pairs[:limit] if limit else pairs
    if not pairs:
        raise SpecError(f"{data} has no chat example ending in an assistant answer to score")
    return pairs, skipped


class _Cache:
    def __init__(self, target: Target, max_tokens: int):
        self.path = tunegate_home() / "eval" / "cache" / f"{target.fingerprint()}.jsonl"
        self.max_tokens = max_tokens
        self.hits = 0
        self._seen: dict[str, Answer] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    used = row.get("usage") or [None, None]
                    self._seen[row["key"]] = Answer(row["answer"], *used)
                except (ValueError, TypeError, KeyError):
                    continue

    def key(self, messages: list[dict[str, Any]]) -> str:
        text = json.dumps([messages, self.max_tokens], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, messages: list[dict[str, Any]], usage: bool) -> Answer | None:
        """The cached answer; with `usage`, only one whose tokens were recorded (an answer
        cached before tunegate kept usage is generated again, once)."""
        found = self._seen.get(self.key(messages))
        if found is not None and usage and not found.measured:
            found = None
        self.hits += found is not None
        return found

    def put(self, messages: list[dict[str, Any]], answer: Answer) -> None:
        key = self.key(messages)
        self._seen[key] = answer
        self.path.parent.mkdir(parents=True, exist_ok=True)
        row: dict[str, Any] = {"key": key, "answer": answer.text}
        if answer.measured:
            row["usage"] = [answer.prompt_tokens, answer.completion_tokens]
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


def answers(
    target: Target, prompts: list[list[dict[str, Any]]], max_tokens: int, label: str, progress: bool
) -> tuple[list[str], int]:
    """Each prompt's greedy answer (cached), and how many came from the cache."""
    got, hits = answers_with_usage(target, prompts, max_tokens, label, progress, usage=False)
    return [a.text for a in got], hits


def answers_with_usage(
    target: Target,
    prompts: list[Messages],
    max_tokens: int,
    label: str,
    progress: bool,
    *,
    usage: bool = True,
) -> tuple[list[Answer], int]:
    """`answers`, each with the tokens it took (`usage`: a cached answer without them is
    generated again), and how many came from the cache."""
    cache = _Cache(target, max_tokens)
    out: list[Answer | None] = [cache.get(p, usage) for p in prompts]
    todo = [i for i, a in enumerate(out) if a is None]
    if todo:
        with Generator(target) as gen:
            done = 0
            for start in range(0, len(todo), BATCH):
                chunk = todo[start : start + BATCH]
                got = gen.answers_with_usage([prompts[i] for i in chunk], max_tokens)
                for i, answer in zip(chunk, got, strict=True):
                    cache.put(prompts[i], answer)
                    out[i] = answer
                done += len(chunk)
                if progress:
                    step_line(f"{label}: {done}/{len(todo)} answered", last=done == len(todo))
    return [a or Answer("") for a in out], cache.hits
