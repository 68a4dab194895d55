"""The dashboard: server-rendered pages over the journal at `/ui` on `tunegate serve` (and
`tunegate ui`), with htmx for partial updates and uPlot for charts, both vendored under
`static/` (no CDN: it works offline and no request leaves the machine).

Pages read; actions (cancel, resume, export, deploy) write. An action is a POST from a
confirmation dialog that shows the equivalent command, carries this process's form token (a
page on another site cannot forge it) and, from anywhere but loopback, the server's API key.
"""

from __future__ import annotations

import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.errors import TunegateError
from gateway.journal import Journal
from gateway.serve.dashboard.views import job_page, job_rows, live, traffic

HERE = Path(__file__).parent
POLL_S = 2.0  # the job page's refresh, and the least time between two provider polls of a job


def _loopback(request: Request) -> bool:
    import ipaddress

    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Ui:
    """The dashboard's routes; `keys` returns the server's API keys by hash (for actions)."""

    def __init__(
        self,
        journal_path: Path | str | None,
        keys: Callable[[], dict[str, Any]],
        *,
        root: str = "/ui",
        folder: Path | None = None,
        engines: Callable[[], list[dict[str, Any]]] | None = None,
    ):
        import jinja2

        self.journal_path = journal_path
        self.keys = keys
        self.engines = engines or list  # the gateway's engine processes (groups and canaries)
        self.root = root
        self.folder = (folder or Path.cwd()).resolve()  # where job and data files are picked from
        self.csrf = secrets.token_urlsafe(24)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True
        )
        self._polled: dict[str, float] = {}
        from gateway.catalog import tunegate_home

        self.journal_file = str(
            Path(journal_path) if journal_path else tunegate_home() / "journal.db"
        )

    def routes(self) -> list[BaseRoute]:
        r = self.root
        return [
            Route(r, lambda request: RedirectResponse(r + "/")),
            Route(r + "/", self.jobs),
            Route(r + "/jobs/{id}", self.job),
            Route(r + "/jobs/{id}/live", self.live),
            Route(r + "/jobs/{id}/{action}", self.act, methods=["POST"]),
            Route(r + "/plan", self.plan, methods=["GET", "POST"]),
            Route(r + "/data", self.data),
            Route(r + "/deployments", self.deployments),
            Route(r + "/experiments", self.experiments),
            Route(r + "/distill", self.distill),
            Route(r + "/evals/{id}/{name}", self.eval_file),
            Mount(r + "/static", StaticFiles(directory=HERE / "static"), name="ui-static"),
        ]

    # rendering ----------------------------------------------------------------------------
    def _page(
        self, request: Request, template: str, page: str, status: int = 200, **ctx: Any
    ) -> Response:
        html = self.env.get_template(template).render(
            root=self.root,
            static=self.root + "/static",
            page=page,
            can_act=_loopback(request),
            csrf=self.csrf,
            journal=self.journal_file,
            **ctx,
        )
        return HTMLResponse(html, status_code=status)

    def _journal(self) -> Journal:
        return Journal(self.journal_path)

    # pages --------------------------------------------------------------------------------
    async def jobs(self, request: Request) -> Response:
        def build() -> list[dict[str, Any]]:
            with self._journal() as journal:
                return job_rows(journal)

        return self._page(request, "jobs.html", "Jobs", rows=await run_in_threadpool(build))

    def _poll(self, job_id: str, journal: Journal) -> Any:
        """The job's record, polled from its provider at most every POLL_S seconds."""
        from gateway.facade.jobs import Job

        rec = journal.get(job_id)
        if rec.terminal or time.monotonic() - self._polled.get(rec.id, -1e9) < POLL_S:
            return rec
        self._polled[rec.id] = time.monotonic()
        try:
            return Job(rec.id, journal).status()
        except TunegateError:
            return journal.get(rec.id)  # a provider that cannot answer now: show the journal

    async def job(self, request: Request) -> Response:
        job_id = request.path_params["id"]

        def build() -> dict[str, Any]:
            with self._journal() as journal:
                rec = self._poll(job_id, journal)
                return {**job_page(journal, rec), "live": live(journal, rec, 0, POLL_S)}

        try:
            ctx = await run_in_threadpool(build)
        except TunegateError as exc:
            return self._page(request, "error.html", "Jobs", 404, error=str(exc))
        return self._page(
            request, "job.html", "Jobs", message=request.query_params.get("message"), **ctx
        )

    async def live(self, request: Request) -> Response:
        """The live panel alone (htmx swaps it in every POLL_S seconds)."""
        job_id = request.path_params["id"]
        after = int(request.query_params.get("after") or 0)

        def build() -> dict[str, Any]:
            with self._journal() as journal:
                return live(journal, self._poll(job_id, journal), after, POLL_S)

        ctx = await run_in_threadpool(build)
        html = self.env.get_template("_live.html").render(root=self.root, live=ctx)
        # the job just ended: reload the page so actions, evals and artifacts follow
        headers = {"HX-Refresh": "true"} if ctx["terminal"] else {}
        return HTMLResponse(html, headers=headers)

    async def act(self, request: Request) -> Response:
        job_id, action = request.path_params["id"], request.path_params["action"]
        form = await request.form()
        refused = self._refuse(request, form)
        if refused:
            return PlainTextResponse(refused, status_code=403)
        try:
            message = await run_in_threadpool(self._do, job_id, action, dict(form))
        except TunegateError as exc:
            message = f"{action} refused: {exc}"
        from urllib.parse import quote

        return RedirectResponse(
            f"{self.root}/jobs/{job_id}?message={quote(message)}", status_code=303
        )

    def _refuse(self, request: Request, form: Any) -> str | None:
        """Why this POST may not act, or None."""
        if not secrets.compare_digest(str(form.get("csrf", "")), self.csrf):
            return "this form is stale or from another site: reload the page and try again"
        if _loopback(request):
            return None
        from gateway.journal.serving import key_hash

        token = str(form.get("key", ""))
        if token and key_hash(token) in self.keys():
            return None
        return "actions from other machines need the server's API key (tunegate keys create)"

    def _do(self, job_id: str, action: str, form: dict[str, Any]) -> str:
        from gateway.facade.jobs import Job

        with self._journal() as journal:
            job = Job(job_id, journal)
            if action == "cancel":
                return f"cancel requested: the job is {job.cancel().state}"
            if action == "resume":
                return f"resumed: the job is {job.resume().state}"
            if action in ("export", "deploy"):
                threading.Thread(
                    target=self._background, args=(job.id, action, form), daemon=True
                ).start()
                journal.add_event(job.id, "ui", f"{action} started from the dashboard")
                return f"{action} started; it is recorded in the events when done"
        raise TunegateError(f"unknown action {action!r}")

    def _background(self, job_id: str, action: str, form: dict[str, Any]) -> None:
        """Export or deploy off the request; the outcome lands in the job's events."""
        with self._journal() as journal:
            try:
                if action == "export":
                    from gateway.facade.export import export

                    to = str(form.get("to") or "gguf")
                    quant = str(form.get("quant") or "") or None
                    result = export(job_id, to, quant=quant, journal=journal)
                    outcome = f"export done: {result.files[0]}"
                else:
                    from gateway.facade.deploy import deploy
                    from providers import serving_target

                    default = serving_target(journal.get(job_id).provider)
                    dep = deploy(
                        job_id,
                        str(form.get("to") or default),
                        name=str(form.get("name") or "") or None,
                    )
                    outcome = f"deployed as {dep.name} ({dep.target})"
            except Exception as exc:  # reported where the user looks, never lost in a thread
                outcome = f"{action} failed: {exc}"
            journal.add_event(job_id, "ui", outcome)

    async def plan(self, request: Request) -> Response:
        from gateway.serve.dashboard.plan import job_files

        form = (
            dict(await request.form()) if request.method == "POST" else dict(request.query_params)
        )
        upload = form.pop("upload", None)
        from gateway.spec.choices import METHODS

        ctx: dict[str, Any] = {
            "files": job_files(self.folder),
            "form": form,
            "folder": str(self.folder),
            "methods": METHODS,
        }
        with self._journal() as journal:
            ctx["jobs"] = [(r.id, r.name or r.base_model) for r in journal.jobs()][:50]
        text = (
            await upload.read() if upload is not None and getattr(upload, "filename", "") else None
        )
        if text or any(form.get(k) for k in ("file", "job", "base")):
            try:
                ctx["result"] = await run_in_threadpool(self._plan, form, text)
            except TunegateError as exc:
                ctx["error"] = str(exc)
        partial = request.headers.get("hx-request") == "true" and request.method == "POST"
        template = "_plan_result.html" if partial else "plan.html"
        return self._page(request, template, "Plan", **ctx)

    def _plan(self, form: dict[str, Any], upload: bytes | None) -> dict[str, Any]:
        from gateway.errors import SpecError
        from gateway.facade.plan import plan
        from gateway.serve.dashboard.plan import plan_page
        from gateway.spec import JobSpec, option_patch

        if form.get("job"):
            from gateway.facade.advice import plan_job

            jp = plan_job(str(form["job"]), self.journal_path)
            return plan_page(jp.plan, measured=jp.volume.tokens_per_day if jp.volume else None)
        # the same options as `tunegate plan`, applied the same way
        opts = {k: form.get(k) or None for k in ("base", "method", "epochs", "serve")}
        opts["epochs"] = float(opts["epochs"]) if opts["epochs"] else None
        if upload is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "upload.yaml"
                path.write_bytes(upload)
                spec = JobSpec.from_yaml(path, relative_to=self.folder)
            spec = spec.with_overrides(option_patch(opts))
        elif form.get("file"):
            spec = JobSpec.from_options(self._inside(str(form["file"]), "job file"), **opts)
        else:
            spec = JobSpec.from_options(None, **opts)
        examples, avg = form.get("examples"), form.get("avg_tokens")
        try:
            result = plan(
                spec,
                examples=int(examples) if examples else None,
                avg_tokens=float(avg) if avg else None,
            )
        except ValueError as exc:
            raise SpecError(f"examples and tokens per example are numbers ({exc})") from None
        return plan_page(result)

    async def data(self, request: Request) -> Response:
        from gateway.serve.dashboard.plan import data_files, data_page

        q = request.query_params
        ctx: dict[str, Any] = {
            "files": data_files(self.folder),
            "form": dict(q),
            "folder": str(self.folder),
        }
        if q.get("file"):
            try:
                path = self._inside(q["file"])
                evals = self._inside(q["eval"]) if q.get("eval") else None
                ctx["report"] = await run_in_threadpool(
                    lambda: data_page(path, base=q.get("base") or None, eval_path=evals)
                )
            except TunegateError as exc:
                ctx["error"] = str(exc)
        return self._page(request, "data.html", "Data", **ctx)

    def _inside(self, name: str, what: str = "file") -> Path:
        """A file under the dashboard's folder (nothing outside it is read)."""
        from gateway.errors import SpecError

        path = (self.folder / name).resolve()
        if not path.is_relative_to(self.folder) or not path.is_file():
            raise SpecError(f"{name}: not a {what} in {self.folder}")
        return path

    async def deployments(self, request: Request) -> Response:
        ctx = await run_in_threadpool(traffic, self.journal_path)
        return self._page(request, "deployments.html", "Deployments", engines=self.engines(), **ctx)

    async def experiments(self, request: Request) -> Response:
        """Every A/B experiment: arms, share, live deltas with intervals, cost, the decision."""
        from gateway.serve.dashboard.views import experiment_rows

        found = await run_in_threadpool(experiment_rows, self.journal_path)
        return self._page(request, "experiments.html", "Experiments", experiments=found)

    async def distill(self, request: Request) -> Response:
        """What each teacher was asked and paid for distilled datasets (`tunegate distill`)."""
        from gateway.serve.dashboard.views import distill_rows

        found = await run_in_threadpool(distill_rows, self.journal_path)
        return self._page(request, "distill.html", "Distill", teachers=found)

    async def eval_file(self, request: Request) -> Response:
        """A stored report's chart or Markdown, found through the journal (never a free path)."""
        name = request.path_params["name"]
        if name not in ("deltas.png", "report.md"):
            return PlainTextResponse("not found", status_code=404)
        with self._journal() as journal:
            row = next((e for e in journal.evals() if e["id"] == request.path_params["id"]), None)
        path = Path(row["path"]) / name if row else None
        if path is None or not path.is_file():
            return PlainTextResponse("not found", status_code=404)
        media = "image/png" if name.endswith(".png") else "text/plain; charset=utf-8"
        return FileResponse(path, media_type=media)
