"""`tg.export`: a job id, artifact or path exported to merged weights, GGUF or MLX, verified.

The facade resolves the source (`gateway.facade.sources`) and the task eval that gates it (the job's
`eval:`, or `eval_data=` given here; `gateway.evaluate.gate`); `exporters.pipeline.export` takes
only what is already on disk, so the exporters never import the job handle or the evaluator.
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
    from gateway.facade.sources import for_export, gate_of

    what = for_export(source, journal)
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
    return export_files(what, to, journal=journal, gate=gate, **options)
