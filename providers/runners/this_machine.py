"""This machine as a runner: the worker runs here, detached.

`start` launches `python -m providers.<backend>.worker JOBDIR` in its own session (process
group), so it survives the CLI exiting and Ctrl-C in the terminal (under torchrun, with one rank
per GPU or per `resources.processes`, for a backend that trains data-parallel); `poll` reads
JOBDIR the way the hosted backends read an API; `cancel` ends the process group and torchrun's
ranks; a worker that died without finishing marks the job failed with the tail of its log;
`resume` starts it again from the newest complete checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gateway.errors import JobError
from gateway.journal import JobRecord
from gateway.journal.records import JobUpdate, job_dir
from providers.jobdir import JobDir, add_metrics
from providers.runners.base import Worker

_ROOT = Path(__file__).resolve().parents[2]


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


def _pid(job: JobDir) -> int | None:
    return int(job.pid_file.read_text()) if job.pid_file.exists() else None


class ThisMachine:
    """The worker as a detached process (group) on this machine."""

    kind = "local"
    here = True

    def blocker(self, offer: Any) -> str | None:
        return None  # the backend's own offers() already said whether it fits here

    def check_ready(self) -> None:
        return None

    def preview(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        return None  # always tunegate's own worker

    def base_path(self, base_model: str) -> str:
        from gateway.catalog.models import resolve_model

        return str(resolve_model(base_model))

    def stage(self, rec: JobRecord, jobdir: Path) -> None:
        return None  # the worker reads the folder where it was written

    def start(self, rec: JobRecord, worker: Worker, *, resume: bool = False) -> str:
        job = JobDir(job_dir(rec.id))
        job.cancel_file.unlink(missing_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])),
        }
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        command = [sys.executable, "-m", worker.worker, str(job.path)]
        ranks = worker.processes(rec)
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

    def find(self, rec: JobRecord) -> str | None:
        job = JobDir(job_dir(rec.id))
        if job.pid_file.exists():
            return f"local:{job.pid_file.read_text().strip()}"
        return None

    def resume(self, rec: JobRecord, worker: Worker) -> str:
        job = JobDir(job_dir(rec.id))
        if not job.spec_file.exists():
            raise JobError(f"job {rec.id} has no job directory to resume from")
        pid = _pid(job)
        if _running(pid, job.path):
            raise JobError(f"job {rec.id} is still running (pid {pid})")
        job.write_status(state="queued", error=None)
        return self.start(rec, worker, resume=True)

    def poll(self, rec: JobRecord) -> JobUpdate:
        job = JobDir(job_dir(rec.id))
        status = job.status()
        raw = status.get("state") or "starting"
        state = {"starting": "queued", "queued": "queued"}.get(raw, raw)
        pid = _pid(job)
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
            update.actual = _actual(rec, status)
        return update

    def logs(self, rec: JobRecord, lines: int) -> str:
        return JobDir(job_dir(rec.id)).log_tail(lines)

    def cancel(self, rec: JobRecord) -> None:
        job = JobDir(job_dir(rec.id))
        job.cancel_file.write_text(str(time.time()))
        pid = _pid(job)
        if pid is None:
            return
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

    def collect(self, rec: JobRecord) -> None:
        return None  # the adapter is in the job folder already

    def checks(self, refresh: bool = False) -> list[Any]:
        return []  # this machine's extras, hardware and engines are doctor's own checks


def _actual(rec: JobRecord, status: dict[str, Any]) -> dict[str, Any]:
    """What the job measured on this machine; its throughput feeds the next plan here."""
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
