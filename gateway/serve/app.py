"""The ASGI app behind `tunegate serve`: OpenAI's `/v1/chat/completions`, `/v1/completions`
and `/v1/models` over every live deployment, with keys, budgets, fallbacks and one usage
record per request; OpenAI's fine-tuning API (`gateway.serve.finetuning.routes`); `/tunegate/advice`
and `/tunegate/health` for operators.

Errors have OpenAI's shape (`{"error": {"message", "type", "code", "param"}}`), so the
official SDKs raise their usual exception types (404 NotFoundError, 429 RateLimitError, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import traceback
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from exporters.deploy.engines import Engines
from gateway.catalog import tunegate_home
from gateway.journal.experiments import Experiments
from gateway.journal.serving import ApiKey, ServeStore, key_hash
from gateway.serve.meter import Meter
from gateway.serve.metering import Metering
from gateway.serve.metrics import CONTENT_TYPE, Metrics
from gateway.serve.proxy import Outcome, Unreachable, via_chat, via_http
from gateway.serve.registry import Registry, Target
from gateway.serve.responses import ResponsesShape, ShapeError, stored_routes
from gateway.serve.scoring import answer_of, observe, take_reference
from gateway.serve.shadow import WORKERS as SHADOW_WORKERS
from gateway.serve.shadow import Shadow
from gateway.serve.split import arm_of, parse_feedback, subject
from gateway.serve.upkeep import Upkeep, spool_dir

KEYS_REFRESH_S = 5.0
ADVICE_CACHE_S = 60.0


def error(status: int, message: str, kind: str, code: str | None = None, **extra: Any) -> Response:
    body = {
        "error": {"message": message, "type": kind, "code": code, "param": extra.pop("param", None)}
    }
    headers = (
        {"x-should-retry": "false"} if status == 429 else {}
    )  # a spent budget is not transient
    return JSONResponse(body, status, headers={**headers, **extra.pop("headers", {})})


class Gateway:
    """Everything one server process holds: the journal, the meter, engines, one HTTP pool."""

    def __init__(
        self,
        journal_path: Path | str | None = None,
        *,
        log_prompts: bool = False,
        ft_model: str | None = None,
        ui_folder: Path | None = None,
    ):
        from gateway.serve.finetuning.jobs import FineTuning

        self.store = ServeStore(journal_path)
        self.registry = Registry(self.store, self.store.path)
        self.meter = Meter(self.store, spool_dir(self.store.path))
        self.log_prompts = log_prompts
        timeout = float(os.environ.get("TUNEGATE_UPSTREAM_TIMEOUT_S", "600"))
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=1024, max_keepalive_connections=256),
        )
        self.engines = Engines(tunegate_home() / "serve", self.client)
        self.ft = FineTuning(self.store.path, tunegate_home() / "serve" / "files", ft_model)
        self._keys: dict[str, ApiKey] = {}
        self._keys_loaded = -1e9
        self._advice: tuple[float, Any] | None = None
        self.ui_folder = ui_folder
        self.shadow = Shadow(self.registry, self.store, self.meter.submit, self._send_copy)
        self.upkeep = Upkeep(
            self.store, self.engines.states, lambda: self.registry.refresh(force=True)
        )
        self.metrics = Metrics(self._state)
        self.meter.observers.append(self.metrics.observe)

    def _state(self) -> dict[str, Any]:
        """What /tunegate/health and /metrics read: engines, the usage writer, shadow copies."""
        m = self.meter
        return {
            "replica": self.upkeep.id,
            "engines": self.engines.states(),
            "meter": {"pending": m.pending, "written": m.written, "failures": m.failures,
                      "last_batch_s": m.last_batch_s, "recovered": m.recovered},
            "shadow": {"sent": self.shadow.sent, "dropped": self.shadow.dropped},
        }  # fmt: skip

    # lifecycle ----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        watcher = loop.create_task(self.engines.watch())
        tasks = [loop.create_task(job) for job in self.upkeep.tasks()]
        shadows = [loop.create_task(self.shadow.work()) for _ in range(SHADOW_WORKERS)]
        try:
            yield
        finally:
            watcher.cancel()
            for task in [*tasks, *shadows]:
                task.cancel()
            await self.client.aclose()
            self.close()

    async def _send_copy(self, target: Target, body: dict[str, Any], route: str, done: Any) -> Any:
        """One shadow copy to the candidate (`gateway.serve.shadow`): (status, body, headers)."""
        if target.upstream is not None and target.upstream.kind == "chat":
            return await via_chat(target, body, route, done)
        return await via_http(self.client, self.engines, target, body, route, done)

    def close(self) -> None:
        self.engines.close()
        self.upkeep.close()
        self.meter.close()
        self.ft.close()
        self.store.close()

    def app(self) -> Starlette:
        from starlette.responses import RedirectResponse

        from gateway.serve.dashboard.app import Ui
        from gateway.serve.finetuning.routes import FtRoutes

        ui = Ui(self.store.path, self.keys, folder=self.ui_folder, engines=self.engines.states)
        routes = [
            Route("/", lambda request: RedirectResponse("/ui/")),
            *ui.routes(),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/responses", self.responses, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/models/{model:path}", self.model, methods=["GET"]),
            Route("/tunegate/advice", self.advice, methods=["GET"]),
            Route("/tunegate/health", self.health, methods=["GET"]),
            Route("/metrics", self.prometheus, methods=["GET"]),
            Route("/tunegate/feedback", self.feedback, methods=["POST"]),
            *FtRoutes(self.ft, self._auth, self.meter.spend).routes(),
            *stored_routes(self.store, self._auth),
        ]
        return Starlette(routes=routes, lifespan=self.lifespan)

    # auth ---------------------------------------------------------------------------------
    def keys(self) -> dict[str, ApiKey]:
        if time.monotonic() - self._keys_loaded > KEYS_REFRESH_S:
            try:
                self._keys = self.store.key_hashes()
            except Exception:  # the store is away: the keys last read stand, retried later
                if self._keys_loaded < 0:
                    raise
            self._keys_loaded = time.monotonic()
        return self._keys

    def _auth(self, request: Request) -> tuple[ApiKey | None, Response | None]:
        keys = self.keys()
        if not keys:
            return None, None  # no keys: loopback only, enforced when binding
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        key = keys.get(key_hash(token)) if token else None
        if key is None:
            return None, error(
                401,
                "a valid tunegate API key is required",
                "invalid_request_error",
                "invalid_api_key",
            )
        return key, None

    # routes -------------------------------------------------------------------------------
    async def models(self, request: Request) -> Response:
        _, denied = self._auth(request)
        if denied:
            return denied
        names = await anyio.to_thread.run_sync(self.registry.names)
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "tunegate"} for n in names]
        return JSONResponse({"object": "list", "data": data})

    async def model(self, request: Request) -> Response:
        _, denied = self._auth(request)
        if denied:
            return denied
        name = request.path_params["model"]
        if name not in await anyio.to_thread.run_sync(self.registry.names):
            return self._unknown(name)
        return JSONResponse({"id": name, "object": "model", "created": 0, "owned_by": "tunegate"})

    async def advice(self, request: Request) -> Response:
        _, denied = self._auth(request)
        if denied:
            return denied
        if self._advice is None or time.monotonic() - self._advice[0] > ADVICE_CACHE_S:
            from gateway.facade.advice import advise

            found = await anyio.to_thread.run_sync(lambda: advise(self.store.path))
            self._advice = (time.monotonic(), [a.to_json() for a in found])
        return JSONResponse({"object": "list", "data": self._advice[1]})

    async def feedback(self, request: Request) -> Response:
        """An application's verdict on one answer: `{"request_id": the x-request-id, "score":
        0-1}` or `"thumbs": "up" | "down"`; what A/B experiments compare arms on."""
        key, denied = self._auth(request)
        if denied:
            return denied
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        found = parse_feedback(body)
        if found is None:
            return error(
                400,
                'expected {"request_id": "req-...", "score": 0-1} or "thumbs": "up" | "down"',
                "invalid_request_error",
            )
        rid, score = found
        await anyio.to_thread.run_sync(
            lambda: Experiments(self.store).add_feedback(rid, score, "app", key.id if key else None)
        )
        return JSONResponse({"request_id": rid, "score": score})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, **self._state()})

    async def prometheus(self, request: Request) -> Response:
        """Prometheus metrics (gateway.serve.metrics); a key is needed once keys exist."""
        _, denied = self._auth(request)
        if denied:
            return denied
        body = await anyio.to_thread.run_sync(self.metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    async def chat(self, request: Request) -> Response:
        return await self._proxy(request, "chat")

    async def completions(self, request: Request) -> Response:
        return await self._proxy(request, "completions")

    def _unknown(self, model: str) -> Response:
        known = self.registry.names()
        listed = ", ".join(known[:50]) or "none (deploy one with `tunegate deploy`)"
        return error(
            404,
            f"the model '{model}' does not exist here; known models: {listed}",
            "invalid_request_error",
            "model_not_found",
            param="model",
        )

    async def responses(self, request: Request) -> Response:
        """OpenAI's Responses API over each upstream's chat API (gateway.serve.responses)."""
        return await self._proxy(request, "responses")

    async def _proxy(self, request: Request, route: str) -> Response:
        if self.meter.full:  # the store has been away too long: no unmetered answers
            return error(
                503, "usage store unavailable; retry shortly", "server_error", "store_down"
            )
        start = time.perf_counter()
        rid = "req-" + uuid.uuid4().hex
        key, denied = self._auth(request)
        meter = Metering(self.meter, self.log_prompts, rid, route, key, start)
        if denied:
            return meter.refused(denied, "no valid key")
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return meter.refused(
                error(
                    400, "the body must be a JSON object with a `model`", "invalid_request_error"
                ),
                "bad body",
            )
        shape = (
            ResponsesShape(self.store, key.id if key else None) if route == "responses" else None
        )
        if shape is not None:
            try:
                body = await anyio.to_thread.run_sync(shape.to_chat, body)
            except ShapeError as exc:
                bad = error(400, str(exc), "invalid_request_error", param=exc.param)
                return meter.refused(bad, str(exc))
            route = "chat"  # what the upstreams are sent; the record keeps "responses"
        meter.body = body
        if key is not None and key.monthly_budget_usd is not None:
            spent = self.meter.spend(key.id)
            if spent >= key.monthly_budget_usd:
                message = (
                    f"the monthly budget of ${key.monthly_budget_usd:.2f} for key '{key.name}' is"
                    f" spent (${spent:.4f} this month); raise it with `tunegate keys budget`"
                )
                return meter.refused(
                    error(429, message, "insufficient_quota", "budget_exceeded"), "budget"
                )
        chain = self.registry.resolve(body["model"])
        if chain is None:
            return meter.refused(self._unknown(body["model"]), "unknown model", status=404)
        experiment, shadowed, reference = self.registry.experiment(body["model"]), False, None
        if experiment is not None:
            client = request.client.host if request.client else None
            who = subject(body.get("user"), key.id if key else None, client)
            meter.experiment, meter.arm = experiment.id, arm_of(experiment, who)
            if experiment.settings.get("shadow"):  # the client keeps the incumbent's answer
                shadowed, meter.arm = meter.arm == "candidate", "incumbent"
            chain = self.registry.arm_chain(experiment, meter.arm, chain)
            body, reference = take_reference(body)
        failed: list[tuple[Target, str]] = []
        meter.failed = failed  # the record names what failed before the one that answered
        for target in chain:
            if target.problem or target.upstream is None:
                failed.append((target, target.problem or "no upstream"))
                continue
            meter.target = target
            try:
                if target.upstream.kind == "chat":
                    status, content, headers = await via_chat(target, body, route, meter.done)
                else:
                    status, content, headers = await via_http(
                        self.client, self.engines, target, body, route, meter.done
                    )
            except Unreachable as exc:
                failed.append((target, str(exc)))
                continue
            except (
                Exception
            ) as exc:  # a bug, not the upstream: metered, shown, never a dropped socket
                traceback.print_exc(file=sys.stderr)
                meter.done(Outcome(500, error=f"{type(exc).__name__}: {exc}"))
                return error(500, f"tunegate serve failed: {type(exc).__name__}", "api_error")
            headers = {**headers, **meter.headers(failed)}
            if failed:
                _report_fallback(body["model"], failed, target)
            if experiment is not None and status < 400:
                # the scorer's score and the kept body, written off the request path
                observe(
                    Experiments(self.store),
                    experiment,
                    body,
                    content,
                    reference,
                    rid,
                    meter.arm or "",
                )
                if shadowed:
                    answered = answer_of(content) if isinstance(content, bytes) else None
                    self.shadow.offer(experiment, body, route, rid, reference, answered)
            if shape is not None and status < 400:
                content = (
                    await anyio.to_thread.run_sync(shape.answer, "resp_" + rid[4:], content)
                    if isinstance(content, bytes)
                    else shape.events("resp_" + rid[4:], content)
                )
            if isinstance(content, bytes):
                return Response(content, status, headers=headers)
            return StreamingResponse(content, status, headers=headers)
        reasons = "; ".join(
            f"{t.deployment.name} ({t.deployment.target}): {why}" for t, why in failed
        )
        meter.failed = failed[:-1]
        meter.target = failed[-1][0] if failed else None
        meter.done(Outcome(502, error=reasons))
        return error(
            502,
            f"no deployment of '{body['model']}' could answer: {reasons}",
            "api_error",
            "upstream_failed",
            headers=meter.headers(failed),
        )


def _report_fallback(model: str, failed: list[tuple[Target, str]], answered: Target) -> None:
    for target, why in failed:
        print(
            f"tunegate serve: {model}: {target.deployment.name} ({target.deployment.id}) failed: "
            f"{why}; answered by {answered.deployment.name} ({answered.deployment.id})",
            file=sys.stderr,
        )
