"""The local backends' side of the job (TRL+PEFT, Unsloth, MLX-LM): the data checked and
converted into the job folder, and the worker contract (`providers.jobdir`). Where the worker
runs is the job's runner (`providers.runners`): this machine, or a rented GPU through SkyPilot,
picked once from the offer the job was launched on; every method below hands the job to it, so
local and rented jobs look the same to everything above.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from gateway.errors import JobError
from gateway.journal import JobRecord
from gateway.journal.records import Artifact, JobUpdate, job_dir
from gateway.spec import ResolvedSpec
from providers.jobdir import JobDir
from providers.runners import runner_for


class LocalJobs:
    """Mixed into the local backends' classes; `worker` names the worker module, which the
    job's runner starts wherever the offer said."""

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

    # launch ---------------------------------------------------------------------------------
    def upload(self, rec: JobRecord, spec: ResolvedSpec, jobdir: Path) -> dict[str, str]:
        """'Upload' for a local job: check and convert the data into JOBDIR, note where the
        base is loaded from, and let the runner make the folder visible to the worker."""
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
        runner = runner_for(rec)
        job = JobDir(jobdir)
        job.spec_file.write_text(
            json.dumps(
                {
                    "job_id": rec.id,
                    "backend": self.name,
                    "base_model": spec.base_model,
                    "base_path": runner.base_path(spec.base_model),
                    "files": out,
                    "threads": os.cpu_count(),
                    "spec": rec.spec,
                },
                indent=2,
            )
        )
        runner.stage(rec, jobdir)
        return out

    def processes(self, rec: JobRecord) -> int:
        """Training processes on one machine: `resources.processes`, else one per GPU."""
        if not self.distributed:
            return 1
        res = rec.spec.get("resources") or {}
        return int(res.get("processes") or res.get("gpus") or 1)

    def create(self, rec: JobRecord, spec: ResolvedSpec) -> str:
        return runner_for(rec).start(rec, self)

    def find(self, rec: JobRecord) -> str | None:
        return runner_for(rec).find(rec)

    def resume(self, rec: JobRecord) -> str:
        return runner_for(rec).resume(rec, self)

    # follow ---------------------------------------------------------------------------------
    def poll(self, rec: JobRecord) -> JobUpdate:
        return runner_for(rec).poll(rec)

    def log_tail(self, rec: JobRecord, lines: int = 50) -> str:
        """The worker's own output, as its runner keeps it."""
        return runner_for(rec).logs(rec, lines)

    def cancel(self, rec: JobRecord) -> None:
        runner_for(rec).cancel(rec)

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
        runner_for(rec).collect(rec)
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
