"""Running local jobs: the provider side of the worker contract (see `providers._worker`).

`create` starts `python -m providers.<backend>.worker JOBDIR` in its own session (process group),
so it survives the CLI exiting and Ctrl-C in the terminal; `poll` reads JOBDIR the way the hosted
backends read an API; `cancel` ends the process group; a worker that died without finishing
marks the job failed with the tail of its log; `resume` starts it again from the last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gateway.errors import JobError
from gateway.job_types import Artifact, JobUpdate, RemoteEvent, job_dir
from gateway.journal import JobRecord
from gateway.spec import ResolvedSpec
from providers._worker import JobDir

_ROOT = Path(__file__).resolve().parents[1]


def _alive(pid: int, jobdir: Path) -> bool:
    """Whether the worker still runs (reaping it if it is our own exited child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if proc.exists():  # Linux: a zombie, or a recycled pid running something else, is not ours
        try:
            if ") Z" in (proc / "stat").read_text():
                return False
            return str(jobdir) in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return False
    return True


class LocalJobs:
    """Mixed into the local backends' classes; `worker` names the worker module."""

    name: str
    worker: str  # e.g. "providers.local_hf.worker"
    requires: tuple[str, ...] = ()  # importable modules the worker needs
    data_target = "trl"

    def check_ready(self) -> None:
        from gateway.extras import require

        require(*self.requires, what=f"the {self.name} backend")

    # launch ---------------------------------------------------------------------------------
    def upload(self, rec: JobRecord, spec: ResolvedSpec, jobdir: Path) -> dict[str, str]:
        """'Upload' for a local job: check and convert the data into JOBDIR, resolve the base."""
        from gateway.data.prepare import prepare
        from gateway.models import resolve_model

        out = {}
        for role, path in (("train", spec.train), ("valid", spec.validation)):
            if path is not None:
                prepare(
                    Path(path),
                    self.data_target,
                    jobdir / f"{role}.jsonl",
                    objective=spec.objective,
                )
                out[role] = f"{role}.jsonl"
        base = resolve_model(spec.base_model)
        job = JobDir(jobdir)
        job.spec_file.write_text(
            json.dumps(
                {
                    "job_id": rec.id,
                    "backend": self.name,
                    "base_model": spec.base_model,
                    "base_path": str(base),
                    "files": out,
                    "threads": os.cpu_count(),
                    "spec": rec.spec,
                },
                indent=2,
            )
        )
        return out

    def _start(self, rec: JobRecord, resume: bool) -> str:
        job = JobDir(job_dir(rec.id))
        job.cancel_file.unlink(missing_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])),
        }
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        with job.log_file.open("ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    self.worker,
                    str(job.path),
                    *(["--resume"] if resume else []),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: survives the CLI and Ctrl-C
                env=env,
                cwd=str(job.path),
            )
        job.pid_file.write_text(str(proc.pid))
        return f"local:{proc.pid}"

    def create(self, rec: JobRecord, spec: ResolvedSpec) -> str:
        return self._start(rec, resume=False)

    def find(self, rec: JobRecord) -> str | None:
        job = JobDir(job_dir(rec.id))
        if job.pid_file.exists():
            return f"local:{job.pid_file.read_text().strip()}"
        return None

    def resume(self, rec: JobRecord) -> str:
        job = JobDir(job_dir(rec.id))
        if not job.spec_file.exists():
            raise JobError(f"job {rec.id} has no job directory to resume from")
        pid = int(job.pid_file.read_text()) if job.pid_file.exists() else None
        if pid and _alive(pid, job.path):
            raise JobError(f"job {rec.id} is still running (pid {pid})")
        job.write_status(state="queued", error=None)
        return self._start(rec, resume=True)

    # follow ---------------------------------------------------------------------------------
    def poll(self, rec: JobRecord) -> JobUpdate:
        job = JobDir(job_dir(rec.id))
        status = job.status()
        raw = status.get("state") or "starting"
        state = {"starting": "queued", "queued": "queued"}.get(raw, raw)
        pid = int(job.pid_file.read_text()) if job.pid_file.exists() else None
        if state in ("queued", "running") and pid and not _alive(pid, job.path):
            if job.cancel_file.exists():
                state, raw = "cancelled", "cancelled"
            else:
                state, raw = "failed", "worker died"
                status["error"] = f"the worker (pid {pid}) died; log tail:\n{job.log_tail()}"
        update = JobUpdate(raw, state)
        for i, row in enumerate(job.metrics()):
            parts = [
                f"step {row.get('step')}"
                + (f"/{row['total_steps']}" if row.get("total_steps") else "")
            ]
            for key in ("loss", "eval_loss"):
                if row.get(key) is not None:
                    parts.append(f"{key} {row[key]:.4f}")
            if row.get("tokens_per_s"):
                parts.append(f"{row['tokens_per_s']:,.0f} tok/s")
            update.events.append(
                RemoteEvent(
                    f"metric:{i}", "  ".join(parts), row.get("time"), "info", row.get("step"), row
                )
            )
            update.step, update.total_steps = row.get("step"), row.get("total_steps")
            if row.get("loss") is not None:
                update.loss = row["loss"]
        update.remote = {"raw_state": raw, "jobdir": str(job.path)}
        if status.get("error") and state in ("failed", "cancelled"):
            update.error = status["error"]
        if state == "succeeded":
            update.actual = self._actual(rec, status)
        return update

    def _actual(self, rec: JobRecord, status: dict[str, Any]) -> dict[str, Any]:
        from gateway.measured import record

        out = {
            k: status[k]
            for k in ("tokens_per_s", "peak_memory_gb", "train_seconds", "trained_tokens", "steps")
            if status.get(k) is not None
        }
        out["usd"] = 0.0  # own hardware: electricity only, not metered here
        out["source"] = "measured by the worker"
        if out.get("tokens_per_s"):
            record(rec, out)
        return out

    def cancel(self, rec: JobRecord) -> None:
        job = JobDir(job_dir(rec.id))
        job.cancel_file.write_text(str(time.time()))
        if not job.pid_file.exists():
            return
        pid = int(job.pid_file.read_text())
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.time() + wait
            while time.time() < deadline and _alive(pid, job.path):
                time.sleep(0.1)
            if not _alive(pid, job.path):
                break
        if job.status().get("state") not in ("succeeded", "failed", "cancelled"):
            job.write_status(state="cancelled", error="cancelled")

    def fetch(
        self, rec: JobRecord, dest: Path, *, progress: bool = False, merged: bool = False
    ) -> Artifact:
        """The adapter the worker wrote (PEFT format); copied to `dest` when one is given."""
        import shutil

        if merged:
            raise JobError(
                "a local job produces an adapter", fix=f"tunegate export {rec.id} --to merged"
            )
        job = JobDir(job_dir(rec.id))
        src = job.adapter
        weights = src / "adapter_model.safetensors"
        if not weights.exists():
            weights = next(iter(sorted(src.glob("*.safetensors"))), weights)
        if not weights.exists():
            raise JobError(f"job {rec.id} finished without an adapter in {src}")
        target = src
        if Path(dest).resolve() != (job.path / "artifact").resolve():
            target = Path(dest)
            if target.exists():
                raise JobError(f"{target} already exists", fix="choose another -o directory")
            shutil.copytree(src, target)
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        kind = "full" if (rec.spec.get("method") == "full") else "adapter"
        return Artifact(
            "",
            rec.id,
            kind,
            str(target.resolve()),
            digest,
            weights.stat().st_size,
            meta={"format": "peft" if kind == "adapter" else "hf"},
        )
