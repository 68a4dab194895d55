"""`tg.export`: a job id, artifact or path exported to merged weights, GGUF or MLX, verified.

The facade resolves the source (`gateway.sources`); `exporters.api.export` takes only what is
already on disk, so the exporters never import the job handle.
"""

from __future__ import annotations

from typing import Any

from exporters.api import ExportResult
from gateway.journal import Journal


def export(
    source: Any, to: str = "gguf", *, journal: Journal | None = None, **options: Any
) -> ExportResult:
    """Export `source` (job id, artifact id, `Artifact`, adapter or model folder) to `to`
    (merged | gguf | mlx); `options` are `exporters.api.export`'s (quant, out, verify, ...)."""
    from exporters.api import export as export_files
    from gateway.sources import for_export

    return export_files(for_export(source, journal), to, journal=journal, **options)
