"""A rented job's folder kept in the bucket by the machine that runs it, for clouds that cannot
mount one (RunPod, Vast in SkyPilot 0.14.1):

    python -m providers.runners.bucket_sync s3://bucket/prefix/JOB-ID JOBDIR -- python -m WORKER JOBDIR --resume

1. **pull**: the job's inputs (spec.json, the converted data), its status and metrics so far, and
   the newest *complete* checkpoint: on a machine SkyPilot started after a preemption the worker
   then resumes where the last one stopped, as it does from a mounted folder.
2. **run** the worker, and every `SYNC_S` seconds **push** `status.json`, `metrics.jsonl` and
   each checkpoint that became complete (its files first, the COMPLETE marker last, so a
   checkpoint cut short in transit is never taken for a whole one); older checkpoints beyond
   the newest `KEEP`, and any a killed machine left half-sent, are removed from the bucket.
3. when the worker ends (or SIGTERM, a preemption notice, is passed on to it): push everything
   again and the adapter, then exit with the worker's code.

What a preemption can lose is what the worker wrote since the last push of a complete
checkpoint: at most `training.checkpoint_minutes` of training plus `SYNC_S`. The local side reads
the same files from the same keys as on the mounted route (`providers.runners.sky_jobs.poll`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from providers.jobdir import COMPLETE
from providers.runners.bucket import JobBucket

SYNC_S = 30.0  # how often progress and new checkpoints go up while the worker runs
KEEP = 2  # complete checkpoints kept in the bucket (the worker keeps 3 on disk)
INPUTS = (".json", ".jsonl", ".yml")
PROGRESS = ("status.json", "metrics.jsonl", "worker.log")


def _step(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def _bucket_checkpoints(bucket: JobBucket) -> dict[str, list[str]]:
    """checkpoint-N -> its files in the bucket (relative to the job's folder)."""
    out: dict[str, list[str]] = {}
    for name in bucket.names("checkpoints"):
        parts = name.split("/")
        if len(parts) >= 3:
            out.setdefault(parts[1], []).append(name)
    return out


def _complete(held: dict[str, list[str]]) -> list[str]:
    """The checkpoints whose COMPLETE marker reached the bucket, oldest first."""
    done = [c for c, files in held.items() if f"checkpoints/{c}/{COMPLETE}" in files]
    return sorted(done, key=_step)


def pull(bucket: JobBucket, jobdir: Path) -> str | None:
    """The job's inputs and progress, and its newest complete checkpoint, into JOBDIR; the
    checkpoint's name, or None on a first start."""
    jobdir.mkdir(parents=True, exist_ok=True)
    for name in bucket.names():
        if "/" not in name and (name.endswith(INPUTS) or name in PROGRESS):
            data = bucket.read(name)
            if data is not None:
                (jobdir / name).write_bytes(data)
    complete = _complete(_bucket_checkpoints(bucket))
    if not complete:
        return None
    newest = complete[-1]
    bucket.download(f"checkpoints/{newest}", jobdir / "checkpoints" / newest)
    return newest


class Pusher:
    """What went up already, so each complete checkpoint is sent once."""

    def __init__(self, bucket: JobBucket, jobdir: Path):
        self.bucket, self.jobdir = bucket, jobdir
        self.sent = set(_complete(_bucket_checkpoints(bucket)))

    def progress(self) -> None:
        for name in PROGRESS:
            path = self.jobdir / name
            if path.is_file():
                self.bucket.put(name, path)
        folder = self.jobdir / "checkpoints"
        done = sorted(
            (p for p in folder.glob("checkpoint-*") if (p / COMPLETE).is_file()),
            key=lambda p: _step(p.name),
        )
        new = [c for c in done if c.name not in self.sent]
        for ckpt in new:
            self._tree(ckpt, f"checkpoints/{ckpt.name}", last=COMPLETE)
            self.sent.add(ckpt.name)
        if new:  # the bucket is listed again only when it changed
            self._prune()

    def _tree(self, folder: Path, under: str, last: str | None = None) -> None:
        files = (p for p in folder.rglob("*") if p.is_file())
        for path in sorted(files, key=lambda p: (p.name == last, p)):  # the marker goes up last
            self.bucket.put(f"{under}/{path.relative_to(folder).as_posix()}", path)

    def _prune(self) -> None:
        held = _bucket_checkpoints(self.bucket)
        complete = _complete(held)
        old = complete[:-KEEP]
        if complete:  # and what a killed machine left half-sent, older than the newest whole one
            newest = _step(complete[-1])
            old += [c for c in held if c not in complete and _step(c) < newest]
        if old:
            self.bucket.delete([n for c in old for n in held[c]])

    def final(self) -> None:
        """Everything once more, then the adapter: the job's result."""
        self.progress()
        adapter = self.jobdir / "adapter"
        if adapter.is_dir():
            self._tree(adapter, "adapter")
        status = self.jobdir / "status.json"
        if status.is_file():  # its final state once more, after the adapter is there
            self.bucket.put("status.json", status)


def run(uri: str, jobdir: Path, command: list[str], sync_s: float = SYNC_S) -> int:
    """Pull, run `command` with progress pushed every `sync_s`, push, return its exit code."""
    bucket = JobBucket.at(uri)
    resumed = pull(bucket, jobdir)
    print(f"bucket_sync: {uri} -> {jobdir}; resuming from {resumed or 'the start'}", flush=True)
    pusher = Pusher(bucket, jobdir)
    child = subprocess.Popen(command)

    def _forward(signum: int, _frame: object) -> None:  # a preemption notice: let it save
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    while True:
        try:
            code = child.wait(timeout=sync_s)
            break
        except subprocess.TimeoutExpired:
            try:
                pusher.progress()
            except Exception as exc:  # a failed push is retried at the next round
                print(f"bucket_sync: push failed, retried in {sync_s:g} s: {exc}", flush=True)
    pusher.final()
    print(f"bucket_sync: worker exited {code}; folder pushed to {uri}", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 4 or args[2] != "--":
        print(__doc__.splitlines()[3].strip(), file=sys.stderr)
        return 2
    sync_s = float(os.environ.get("TUNEGATE_SYNC_S", SYNC_S))
    return run(args[0], Path(args[1]), args[3:], sync_s)


if __name__ == "__main__":
    sys.exit(main())
