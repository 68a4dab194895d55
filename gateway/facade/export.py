"""`tg.export`: a job id, artifact or path exported to merged weights, GGUF or MLX, verified.

The facade resolves the source (`gateway.facade.sources`) and the task eval that gates it (the
job's `eval:`, or `eval_data=` given here; `gateway.evaluate.gate`); `exporters.pipeline.export`
takes only what is already on disk and returns files, so the exporters never import the job
handle, the evaluator or the journal; the facade journals the result as an artifact of its job.
Every export goes this one way, those a deploy makes first included (`gateway.facade.deploy`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporters.pipeline import ExportResult
from gateway.journal import Journal


def export(
    source: Any,
    to: str = "gguf",
    *,
    journal: Journal | None = None,
    task_eval: bool = True,
    eval_data: Path | None = None,
    scorer: str | None = None,
    pattern: str | None = None,
    max_drop: float | None = None,
    eval_limit: int | None = None,
    **options: Any,
) -> ExportResult:
    """Export `source` (job id, artifact id, `Artifact`, adapter or model folder) to `to`
    (merged | gguf | mlx); `options` are `exporters.pipeline.export`'s (quant, out, verify, ...).

    A job whose file has `eval:` (or any source given `eval_data`) is also task-evaluated on
    the export against its source, and refused as unverified past `max_drop` points
    (default: the job's `eval.export_max_drop`, 3). `task_eval=False` skips that."""
    from exporters.pipeline import export as export_files
    from gateway.facade.sources import for_export, gate_of, job_named

    journal = journal or Journal()
    what = for_export(source, journal)
    job = job_named(getattr(what, "job_id", None), journal)
    if job is not None:  # the exporter reads no journal: the job's base and name come along
        options.setdefault("base", job.spec.get("base_model"))
        options.setdefault("name", job.spec.get("name") or job.id)
    gate = None
    if task_eval:
        gate = gate_of(
            what,
            journal,
            data=eval_data,
            scorer=scorer,
            pattern=pattern,
            max_drop=max_drop,
            limit=eval_limit,
        )
    result = export_files(what, to, gate=gate, **options)
    if result.job_id:
        result.artifact_id = _journal(result, journal)
    return result


def _journal(result: ExportResult, jr: Journal) -> str:
    """The export as an artifact of its job, with an event: what `tunegate status` shows."""
    from exporters.converter import sha256_file
    from exporters.record import NAME

    main = result.files[0]
    size = sum(f.stat().st_size for f in result.files if f.is_file()) or None
    meta = {
        "gguf_type": result.gguf_type,
        "verified": result.verified,
        "task_eval": result.task_eval.summary() if result.task_eval is not None else None,
        "export": str(result.path / NAME),
    }
    art = jr.add_artifact(
        result.job_id,
        result.kind,
        str(main),
        sha256=sha256_file(main) if main.is_file() else None,
        size=size,
        meta=meta,
    )
    jr.add_event(result.job_id, "export", f"{result.kind} at {main}")
    return str(art)
