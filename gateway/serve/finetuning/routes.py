"""The HTTP side of the fine-tuning API: `/v1/files` and `/v1/fine_tuning/jobs`, as the official
SDK calls them. Each handler checks the key, then runs `FineTuning` off the event loop; every
error is OpenAI's envelope (`ApiError`), never a traceback."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.errors import TunegateError
from gateway.journal.serving import ApiKey
from gateway.serve.finetuning.jobs import FineTuning
from gateway.serve.finetuning.shapes import page
from gateway.serve.finetuning.spec import ApiError

Handler = Callable[[Request], Awaitable[Response]]
Auth = Callable[[Request], tuple[ApiKey | None, Response | None]]


def _error(exc: ApiError) -> Response:
    return JSONResponse(exc.body(), exc.status)


class FtRoutes:
    """`auth` is the gateway's key check; `spend(key_id)` its month's metered spend."""

    def __init__(self, ft: FineTuning, auth: Auth, spend: Callable[[str], float]):
        self.ft, self.auth, self.spend = ft, auth, spend

    def routes(self) -> list[Route]:
        jobs = "/v1/fine_tuning/jobs"
        return [
            Route("/v1/files", self._guard(self.upload), methods=["POST"]),
            Route("/v1/files", self._guard(self.list_files), methods=["GET"]),
            Route("/v1/files/{id}", self._guard(self.get_file), methods=["GET"]),
            Route("/v1/files/{id}", self._guard(self.delete_file), methods=["DELETE"]),
            Route("/v1/files/{id}/content", self._guard(self.file_content), methods=["GET"]),
            Route(jobs, self._guard(self.create), methods=["POST"]),
            Route(jobs, self._guard(self.list_jobs), methods=["GET"]),
            Route(jobs + "/{id}", self._guard(self.retrieve), methods=["GET"]),
            Route(jobs + "/{id}/cancel", self._guard(self.cancel), methods=["POST"]),
            Route(jobs + "/{id}/events", self._guard(self.events), methods=["GET"]),
            Route(jobs + "/{id}/checkpoints", self._guard(self.checkpoints), methods=["GET"]),
        ]

    def _guard(self, handler: Handler) -> Handler:
        """Key check first; every failure in OpenAI's error shape."""

        async def run(request: Request) -> Response:
            key, denied = self.auth(request)
            if denied:
                return denied
            request.state.key = key
            try:
                return await handler(request)
            except ApiError as exc:
                return _error(exc)
            except TunegateError as exc:
                return _error(ApiError(400, exc.message, code="tunegate_error"))

        return run

    # files --------------------------------------------------------------------------------
    async def upload(self, request: Request) -> Response:
        form = await request.form()
        upload, purpose = form.get("file"), form.get("purpose")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "send the file as multipart field `file`", param="file")
        stored = await anyio.to_thread.run_sync(  # copied from python-multipart's spool file
            self.ft.upload,
            upload.filename or "upload.jsonl",
            str(purpose or ""),
            upload.file,
            request.state.key,
        )
        return JSONResponse(stored.to_api())

    async def list_files(self, request: Request) -> Response:
        q = request.query_params
        files = [f.to_api() for f in self.ft.store.files(q.get("purpose"))]
        if q.get("order") == "asc":
            files.reverse()
        return JSONResponse(page(files, q.get("after"), _int(q.get("limit")), "files"))

    async def get_file(self, request: Request) -> Response:
        return JSONResponse(self.ft.file(request.path_params["id"]).to_api())

    async def delete_file(self, request: Request) -> Response:
        file_id = request.path_params["id"]
        if not self.ft.store.delete_file(file_id):
            raise ApiError(404, f"no file '{file_id}' here", code="file_not_found")
        return JSONResponse({"id": file_id, "object": "file", "deleted": True})

    async def file_content(self, request: Request) -> Response:
        stored = self.ft.file(request.path_params["id"])
        return Response(stored.path.read_bytes(), media_type="application/octet-stream")

    # jobs ---------------------------------------------------------------------------------
    async def create(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        key = request.state.key
        budget_left = None
        if key is not None and key.monthly_budget_usd is not None:
            budget_left = key.monthly_budget_usd - self.spend(key.id)
            if budget_left <= 0:
                raise ApiError(
                    429,
                    f"the monthly budget of key '{key.name}' is spent",
                    code="budget_exceeded",
                    kind="insufficient_quota",
                )
        job = await anyio.to_thread.run_sync(
            lambda: self.ft.create(
                body,
                key,
                idempotency_key=request.headers.get("idempotency-key"),
                retry_count=request.headers.get("x-stainless-retry-count"),
                budget_left_usd=budget_left,
            )
        )
        return JSONResponse(job)

    async def list_jobs(self, request: Request) -> Response:
        q = request.query_params
        metadata = {
            k[len("metadata[") : -1]: v
            for k, v in q.items()
            if k.startswith("metadata[") and k.endswith("]")
        }
        result = await anyio.to_thread.run_sync(
            self.ft.list_jobs, q.get("after"), _int(q.get("limit")), metadata
        )
        return JSONResponse(result)

    async def retrieve(self, request: Request) -> Response:
        return JSONResponse(
            await anyio.to_thread.run_sync(self.ft.retrieve, request.path_params["id"])
        )

    async def cancel(self, request: Request) -> Response:
        return JSONResponse(
            await anyio.to_thread.run_sync(self.ft.cancel, request.path_params["id"])
        )

    async def events(self, request: Request) -> Response:
        return await self._paged(request, self.ft.events)

    async def checkpoints(self, request: Request) -> Response:
        return await self._paged(request, self.ft.checkpoints)

    async def _paged(self, request: Request, fn: Callable[..., dict[str, Any]]) -> Response:
        q = request.query_params
        result = await anyio.to_thread.run_sync(
            fn, request.path_params["id"], q.get("after"), _int(q.get("limit"))
        )
        return JSONResponse(result)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        raise ApiError(400, f"limit must be a number, not {value!r}", param="limit") from None
