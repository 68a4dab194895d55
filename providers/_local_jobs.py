"""Running local jobs: the provider side of the worker contract (see `providers._worker`).

`create` starts `python -m providers.<backend>.worker JOBDIR` in its own session (process group),
so it survives the CLI exiting and Ctrl-C in the terminal (under torchrun, with one rank per
GPU or per `resources.processes`, for a backend that trains data-parallel); `poll` reads JOBDIR
the way the hosted backends read an API; `cancel` ends the process group; a worker that died
without finishing marks the job failed with the tail of its log; `resume` starts it again from
the last checkpoint. A job on a rented GPU runs the same worker through SkyPilot
(`providers.runners.skypilot`): each method hands such a job there.
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
from gateway.journal import JobRecord
from gateway.journal.records import Artifact, JobUpdate, job_dir
from gateway.spec import ResolvedSpec
from providers._worker import JobDir, add_metrics

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


def torchrun(ranks: int, nodes: int = 1) -> list[str]:
    """`torch.distributed.run` in front of `-m WORKER`: `ranks` processes on this machine,
    talking over loopback on a free port (gloo on CPUs, NCCL on GPUs)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return [
        "torch.distributed.run",
        f"--nproc_per_node={ranks}",
        f"--nnodes={nodes}",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        "-m",
    ]


def worker_pids(jobdir: Path) -> list[int]:
    """Every live process running this job: the launcher, and torchrun's ranks, which start
    in sessions of their own (so a signal to the launcher's group does not reach them)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    needle = str(jobdir).encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            ours = needle in cmdline and b"providers." in cmdline
            if ours and ") Z" not in (entry / "stat").read_text():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _running(pid: int | None, jobdir: Path) -> bool:
    """The launcher, or any rank it started, still runs."""
    return bool(pid and _alive(pid, jobdir)) or bool(worker_pids(jobdir))


def rented(rec: JobRecord) -> bool:
    """Whether the job runs on a rented GPU (through SkyPilot) rather than on this machine."""
    return (rec.offer or {}).get("kind") == "rented"


class LocalJobs:
    """Mixed into the local backends' classes; `worker` names the worker module. A job whose
    offer is a rented GPU runs the same worker as a SkyPilot managed job (`providers.runners.skypilot`)."""

    name: str
    serves_with = "llamacpp"  # a local adapter is exported to GGUF and run by llama.cpp
    worker: str  # e.g. "providers.local_hf.worker"
    requires: tuple[str, ...] = ()  # importable modules the worker needs
    data_target = "trl"
    distributed = False  # whether the worker can run as several torchrun ranks
    extras = "local"  # what a rented machine installs to run the worker

    def check_ready(self) -> None:
        from gateway.catalog.extras import require

        require(*self.requires, what=f"the {self.name} backend")

    def check_rented(self) -> None:
        """A rented launch needs SkyPilot and a bucket; said before anything is written."""
        from providers.runners import skypilot as _sky_jobs

        _sky_jobs.check_ready()

    # launch ---------------------------------------------------------------------------------
    def upload(self, rec: JobRecord, spec: ResolvedSpec, jobdir: Path) -> dict[str, str]:
        """'Upload' for a local job: check and convert the data into JOBDIR, resolve the base."""
        from gateway.catalog.models import resolve_model
        from gateway.data.prepare import prepare

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
        # a rented machine downloads the base from the hub itself; here it is resolved locally
        base = spec.base_model if rented(rec) else resolve_model(spec.base_model)
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
        if rented(rec):
            from providers.runners import skypilot as _sky_jobs

            _sky_jobs.upload(rec, jobdir)
        return out

    def _start(self, rec: JobRecord, resume: bool) -> str:
        job = JobDir(job_dir(rec.id))
        job.cancel_file.unlink(missing_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])),
        }
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        command = [sys.executable, "-m", self.worker, str(job.path)]
        ranks = self.processes(rec)
        if ranks > 1:
            command[2:2] = torchrun(ranks)  # python -m torch.distributed.run ... -m WORKER
        with job.log_file.open("ab") as log:
            proc = subprocess.Popen(
                [*command, *(["--resume"] if resume else [])],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: survives the CLI and Ctrl-C
                env=env,
                cwd=str(job.path),
            )
        job.pid_file.write_text(str(proc.pid))
        return f"local:{proc.pid}"

    def processes(self, rec: JobRecord) -> int:
        """Training processes on this machine: `resources.processes`, else one per GPU."""
        if not self.distributed:
            return 1
        res = rec.spec.get("resources") or {}
        return int(res.get("processes") or res.get("gpus") or 1)

    def create(self, rec: JobRecord, spec: ResolvedSpec) -> str:
        if rented(rec):
            from providers.runners import skypilot as _sky_jobs

            return _sky_jobs.launch(rec, self.worker, self.extras)
        return self._start(rec, resume=False)

    def find(self, rec: JobRecord) -> str | None:
        if rented(rec):
            from providers.runners import skypilot as _sky_jobs

            return _sky_jobs.find(rec)
        job = JobDir(job_dir(rec.id))
        if job.pid_file.exists():
            return f"local:{job.pid_file.read_text().strip()}"
        return None

    def resume(self, rec: JobRecord) -> str:
        if rented(rec):
            raise JobError(
                f"job {rec.id} ran on a rented GPU: SkyPilot already restarts it after a "
                "preemption, from its newest complete checkpoint",
                fix="tunegate train the job again; its bucket folder keeps the checkpoints",
            )
        job = JobDir(job_dir(rec.id))
        if not job.spec_file.exists():
            raise JobError(f"job {rec.id} has no job directory to resume from")
        pid = int(job.pid_file.read_text()) if job.pid_file.exists() else None
        if _running(pid, job.path):
            raise JobError(f"job {rec.id} is still running (pid {pid})")
        job.write_status(state="queued", error=None)
        return self._start(rec, resume=True)

    # follow ---------------------------------------------------------------------------------
    def poll(self, rec: JobRecord) -> JobUpdate:
        if rented(rec):
            from providers.runners import skypilot as _sky_jobs

            return _sky_jobs.poll(rec)
        job = JobDir(job_dir(rec.id))
        status = job.status()
        raw = status.get("state") or "starting"
        state = {"starting": "queued", "queued": "queued"}.get(raw, raw)
        pid = int(job.pid_file.read_text()) if job.pid_file.exists() else None
        if state in ("queued", "running") and pid and not _running(pid, job.path):
            if job.cancel_file.exists():
                state, raw = "cancelled", "cancelled"
            else:
                state, raw = "failed", "worker died"
                status["error"] = f"the worker (pid {pid}) died; log tail:\n{job.log_tail()}"
        update = JobUpdate(raw, state)
        add_metrics(update, job)
        update.remote = {"raw_state": raw, "jobdir": str(job.path)}
        if status.get("error") and state in ("failed", "cancelled"):
            update.error = status["error"]
        if state == "succeeded":
            update.actual = self._actual(rec, status)
        return update

    def _actual(self, rec: JobRecord, status: dict[str, Any]) -> dict[str, Any]:
        from gateway.cost.measured import record

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

    def log_tail(self, rec: JobRecord, lines: int = 50) -> str:
        """The worker's own output: worker.log here, SkyPilot's job log when rented."""
        if rented(rec):
            from providers.runners import skypilot as _sky_jobs

            return "\n".join(_sky_jobs.logs(rec, lines).splitlines()[-lines:])
        return JobDir(job_dir(rec.id)).log_tail(lines)

    def cancel(self, rec: JobRecord) -> None:
        if rented(rec):
            from providers.runners import skypilot as _sky_jobs

            _sky_jobs.cancel(rec)
            return
        job = JobDir(job_dir(rec.id))
        job.cancel_file.write_text(str(time.time()))
        if not job.pid_file.exists():
            return
        pid = int(job.pid_file.read_text())
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            for group in {pid, *worker_pids(job.path)}:  # torchrun's ranks lead their own
                try:
                    os.killpg(group, sig)
                except (ProcessLookupError, PermissionError):
                    continue
            deadline = time.time() + wait
            while time.time() < deadline and _running(pid, job.path):
                time.sleep(0.1)
            if not _running(pid, job.path):
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
        if rented(rec):
            from providers.runners import skypilot as _sky_jobs

            _sky_jobs.fetch_adapter(rec)
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
