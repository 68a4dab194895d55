"""Local engines (llama-cpp-python's, llama.cpp's or mlx-lm's OpenAI-compatible server) started
and supervised by the gateway: one process per local deployment, or per engine group (several
adapters of one base), on a free loopback port, started on first use, and restarted after it
dies. Answers come from a real batched engine, not a model loaded per request.

A group's engine is proven isolated (`exporters.deploy.canary`) at every start before it takes
a request; when the group gains or loses a member its command changes, and it is restarted.

Only the first start of an engine holds requests until it answers. Once it has run, a request
that finds it down (crashed, or restarting) is refused at once, so the route falls back to the
next deployment of its alias instead of waiting for a model to load.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import httpx

from exporters.deploy.base import Upstream
from exporters.deploy.process import free_port
from gateway.errors import ServeError

START_TIMEOUT_S = float(os.environ.get("TUNEGATE_ENGINE_START_S", "120"))
WATCH_S = 2.0


@dataclass
class Engine:
    deployment_id: str  # or the engine group's key
    upstream: Upstream
    log: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    last_exit: int | None = None
    ready: bool = False  # answered /v1/models (and passed its canary) since it was started
    canary: str | None = None  # the last isolation canary's summary
    retry_at: float = 0.0  # no restart before this (monotonic), after a failed start
    first_start: bool = True  # none finished yet: requests wait for it rather than fall back
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def serving(self) -> bool:
        return self.ready and self.alive

    def to_json(self) -> dict[str, object]:
        return {
            "deployment": self.deployment_id,
            "url": self.base_url if self.serving else None,
            "pid": self.process.pid if self.alive and self.process else None,
            "starts": self.starts,
            "last_exit": self.last_exit,
            "log": str(self.log),
            "canary": self.canary,
        }

    def stop(self) -> None:
        """End the process (if it still runs) and keep how it exited. A `poll()` that races
        another thread's returns None even for a dead process, so the code is read from
        `wait()`: a crash is recorded even when `_exited` missed it."""
        self.ready = False
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
            self.last_exit = self.process.wait()
        self.process = None


class Engines:
    """The gateway's engine processes, by deployment id."""

    def __init__(self, log_dir: Path, client: httpx.AsyncClient):
        self.log_dir = log_dir
        self.client = client
        self._engines: dict[str, Engine] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def states(self) -> list[dict[str, object]]:
        return [e.to_json() for e in self._engines.values()]

    async def url(self, deployment_id: str, upstream: Upstream) -> str:
        """The engine's base URL: started on first use (the requests that come meanwhile wait
        for it too); once it has run and is down, a restart begins in the background and this
        request is refused (it falls back)."""
        engine = self._engines.get(deployment_id)
        if engine is None:
            log = self.log_dir / f"engine-{deployment_id}.log"
            engine = self._engines[deployment_id] = Engine(deployment_id, upstream, log)
        if engine.upstream.command != upstream.command and not engine.lock.locked():
            # a group gained or lost a member: the new engine is a first start (requests wait)
            engine.stop()
            engine.upstream, engine.starts, engine.retry_at = upstream, 0, 0.0
            engine.first_start = True
        if engine.serving:
            return engine.base_url
        if engine.starts and not engine.first_start:
            self._down(engine)
        async with engine.lock:  # the first start, or waiting for it
            if engine.serving:
                return engine.base_url
            if engine.starts and not engine.first_start:  # the start we waited for failed
                self._down(engine)
            try:
                await self._start(engine)
            finally:
                engine.first_start = False
        return engine.base_url

    def _down(self, engine: Engine) -> NoReturn:
        """Refuse a request to an engine that ran and is down, restarting it in the background
        (no sooner than its backoff allows); the request falls back meanwhile."""
        if not engine.lock.locked() and time.monotonic() >= engine.retry_at:
            self._exited(engine)
            self._restart(engine)
        raise ServeError(
            f"the engine for {engine.deployment_id} is down (last exit code {engine.last_exit}); "
            "it is being restarted",
            where=str(engine.log),
        )

    async def _start(self, engine: Engine) -> None:
        engine.stop()  # what is left of the last run: reaped, its exit code kept
        engine.port = free_port()
        argv = [a.replace("{port}", str(engine.port)) for a in engine.upstream.command]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with engine.log.open("ab") as log:
            engine.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **engine.upstream.env},
            )
        engine.starts += 1
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if engine.process.poll() is not None:
                break
            try:
                res = await self.client.get(engine.base_url + "/models", timeout=2.0)
                if res.status_code == 200:
                    await self._canary(engine)
                    engine.ready, engine.retry_at = True, 0.0
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        code = engine.process.poll()
        engine.stop()
        engine.retry_at = time.monotonic() + min(60.0, 2.0**engine.starts)
        tail = engine.log.read_text(errors="replace")[-600:].strip() if engine.log.exists() else ""
        what = f"exited with code {code}" if code is not None else "did not answer in time"
        raise ServeError(
            f"the engine for {engine.deployment_id} {what}" + (f": {tail}" if tail else ""),
            where=str(engine.log),
            fix="the engine's log above says why; `tunegate doctor` checks the extras",
        )

    async def _canary(self, engine: Engine) -> None:
        """A shared engine answers nobody until its members are proven isolated again."""
        up = engine.upstream
        if not up.canary:
            return
        import anyio

        from exporters.deploy.canary import check
        from exporters.deploy.groups import reference_prints

        report = await anyio.to_thread.run_sync(
            check,
            engine.base_url,
            dict(up.headers),
            list(up.canary),
            reference_prints(up.references),
        )
        engine.canary = report.summary()
        with engine.log.open("a") as log:
            log.write(f"\ntunegate: {engine.canary}\n")
        if not report.passed:
            engine.stop()
            engine.retry_at = time.monotonic() + 300.0
            raise ServeError(
                f"the shared engine {engine.deployment_id} failed its {engine.canary}",
                where=str(engine.log),
                fix="`tunegate doctor --canary` runs it again; undeploy the member it names",
            )

    def failed(self, deployment_id: str) -> None:
        """A request could not reach the engine: stop what is left of it and start it again in
        the background (the request itself falls back to the next deployment meanwhile)."""
        engine = self._engines.get(deployment_id)
        if engine is None or engine.lock.locked():
            return
        self._exited(engine)
        engine.stop()
        self._restart(engine)

    @staticmethod
    def _exited(engine: Engine) -> None:
        code = engine.process.poll() if engine.process is not None else None
        if code is not None:
            engine.last_exit = code

    def _restart(self, engine: Engine) -> None:
        task = asyncio.get_running_loop().create_task(self._start_locked(engine))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    async def _start_locked(self, engine: Engine) -> None:
        async with engine.lock:
            if not engine.serving:
                await self._start(engine)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            print(f"tunegate serve: {task.exception()}", file=sys.stderr)

    async def watch(self, every_s: float = WATCH_S) -> None:
        """Restart any engine that was serving and has died (the supervisor loop)."""
        while True:
            await asyncio.sleep(every_s)
            for engine in list(self._engines.values()):
                if engine.ready and not engine.alive and not engine.lock.locked():
                    self._exited(engine)
                    print(
                        f"tunegate serve: the engine for {engine.deployment_id} exited "
                        f"(code {engine.last_exit}); restarting it",
                        file=sys.stderr,
                    )
                    engine.ready = False
                    self._restart(engine)

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for engine in self._engines.values():
            engine.stop()
