"""`export()`: from a job, an artifact or an adapter folder to a verified merged model or GGUF.

Everything is written under a hidden `.NAME.partial-*` folder beside the target and renamed to
the target only when every step finished and the verification passed; a failed verification
leaves the files at `NAME.unverified` with the report, never at the name users load from.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporters.adapter import read_adapter
from exporters.converter import sha256_file
from exporters.formats import EXPORT_TARGETS
from exporters.gguf import CONVERTER_TYPES, adapter_to_gguf, check_type, convert, quantize
from exporters.verify import VerifyReport
from gateway.errors import ExportError, VerificationError

TARGETS = EXPORT_TARGETS


@dataclass
class Source:
    """What is being exported: a base model folder, maybe an adapter, maybe a journaled job."""

    base: Path
    adapter: Path | None
    name: str
    job_id: str | None = None


@dataclass
class ExportResult:
    path: Path
    kind: str  # merged | gguf | gguf-adapter
    files: list[Path]
    gguf_type: str | None
    verification: VerifyReport | None
    steps: list[dict[str, Any]] = field(default_factory=list)
    artifact_id: str | None = None  # set by the facade once it journals the export
    task_eval: Any = None  # the gate's report (gateway.evaluate.gate) when one ran
    job_id: str | None = None  # the job the exported model came from, if any

    @property
    def verified(self) -> bool:
        """Checked numerically, and by the task eval when one ran."""
        return self.verification is not None and (
            self.task_eval is None or bool(self.task_eval.passed)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "files": [str(f) for f in self.files],
            "gguf_type": self.gguf_type,
            "verification": self.verification.to_json() if self.verification else None,
            "steps": self.steps,
            "artifact_id": self.artifact_id,
            "task_eval": self.task_eval.summary() if self.task_eval is not None else None,
        }


class _Steps:
    """Timed steps, shown on stderr when asked (progress for the long ones)."""

    def __init__(self, show: bool):
        self.show = show
        self.done: list[dict[str, Any]] = []
        self._console: Any = None
        if show:
            from rich.console import Console

            self._console = Console(stderr=True)

    def run(self, label: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.time()
        if self._console:
            with self._console.status(f"{label}…"):
                value = fn(*args, **kwargs)
        else:
            value = fn(*args, **kwargs)
        seconds = round(time.time() - started, 2)
        self.done.append({"step": label, "seconds": seconds})
        if self._console:
            self._console.print(f"[green]✓[/] {label} ({seconds:.1f} s)")
        return value


def resolve_source(
    source: Any, *, base: str | Path | None = None, name: str | None = None
) -> Source:
    """An `Artifact`, an adapter folder or an HF model folder → `Source`. Job ids are
    resolved to their artifact by the facade (`gateway.facade.export`) before they reach here,
    with the job's base model and name: the exporters read no journal."""
    from gateway.catalog.models import resolve_model

    job_id = None
    base_name: str | None = str(base) if base else None
    uri = getattr(source, "uri", None)
    if uri:  # an Artifact
        path, job_id = Path(uri), getattr(source, "job_id", None)
    else:
        path = Path(str(source)).expanduser().resolve()
        if not path.exists():
            raise ExportError(
                "no such file or folder",
                where=str(source),
                fix="pass a folder, or a job id to `tunegate export` / `tg.export`",
            )
    name = name or (job_id if job_id else path.name)
    if (path / "adapter_config.json").is_file():
        adapter = read_adapter(path)
        base_name = base_name or adapter.base_name
        if not base_name:
            raise ExportError(
                "the adapter does not say which base model it was trained on",
                where=str(path),
                fix="pass --base MODEL",
            )
        return Source(resolve_model(base_name), path, name, job_id)
    if (path / "config.json").is_file():
        return Source(path, None, name, job_id)
    raise ExportError(
        "neither a PEFT adapter nor an HF model folder",
        where=str(path),
        fix="pass a job id, the folder `tunegate fetch` wrote, or a model folder",
    )


def default_out(src: Source, to: str, gguf_type: str | None, adapter_only: bool) -> Path:
    label = "-".join(x for x in (to, "adapter" if adapter_only else "", gguf_type or "") if x)
    if src.job_id:
        from gateway.journal.records import job_dir

        return job_dir(src.job_id) / "exports" / label
    folder = src.adapter or src.base
    return folder.parent / f"{folder.name}-{label}"


def export(
    source: Any,
    to: str = "gguf",
    *,
    quant: str | None = None,
    adapter_only: bool = False,
    out: Path | str | None = None,
    base: str | Path | None = None,
    verify: bool = True,
    split_max_size: str | None = None,
    group_size: int = 64,
    progress: bool = False,
    name: str | None = None,
    gate: Callable[[str, Path, Path | None, Path, Path], Any] | None = None,
) -> ExportResult:
    """Export `source` to a merged HF folder, GGUF or MLX; verified unless `verify=False`.

    `quant` is a GGUF type (f16, q4_k_m, ...) for gguf, or an MLX type (float16, bfloat16,
    float32, q8, q6, q4, q3; default float16) for mlx, quantized in groups of `group_size`.
    `gate(kind, base, adapter, written, final)` runs last, on the written export: a report with
    `passed`, `failures`, `summary()`, or None; one that did not pass leaves the export
    unverified, like a failed numeric check (the facade passes a job's task eval here).
    Paths in, files out: the facade journals the result (`gateway.facade.export`)."""
    from exporters.mlx import check_mlx_type

    if to not in TARGETS:
        raise ExportError(f"unknown export target {to!r}", fix=f"one of: {', '.join(TARGETS)}")
    if to == "merged" and (quant or adapter_only):
        raise ExportError("--quant and --adapter-only apply to --to gguf and --to mlx")
    if to == "mlx" and adapter_only and quant:
        raise ExportError("an mlx-lm adapter is not quantized; drop --quant")
    gguf_type = check_type(quant or "f16") if to == "gguf" else None
    if to == "mlx" and not adapter_only:
        gguf_type = check_mlx_type(quant or "float16")
    src = resolve_source(source, base=base, name=name)
    if src.adapter is None and (to == "merged" or adapter_only):
        raise ExportError(
            "this is already a full model; there is no adapter to merge or convert",
            where=str(src.base),
            fix="--to gguf exports the model itself",
        )
    target = (
        Path(out).expanduser().resolve() if out else default_out(src, to, gguf_type, adapter_only)
    )
    if target.exists():
        raise ExportError(f"{target} already exists", fix="pass --out DIR, or remove it")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    steps = _Steps(progress)
    try:
        if to == "merged":
            kind, files, report = "merged", [work], _merged(src, work, steps, verify)
        elif to == "mlx":
            from exporters.mlx import export_mlx, export_mlx_adapter

            if adapter_only:
                kind, (files, report) = "mlx-adapter", export_mlx_adapter(src, work, steps, verify)
            else:
                kind = "mlx"
                files, report = export_mlx(
                    src, work, gguf_type or "float16", group_size, steps, verify
                )
        elif adapter_only:
            kind = "gguf-adapter"
            files, report = _gguf_adapter(src, work, gguf_type or "f16", steps, verify)
        else:
            kind = "gguf"
            files, report = _gguf(src, work, gguf_type or "f16", split_max_size, steps, verify)
        result = ExportResult(target, kind, [], gguf_type, report, steps.done)
        result.files = [target / f.relative_to(work) if f != work else target for f in files]
        if gate is not None and (report is None or report.passed):
            result.task_eval = steps.run(
                "task eval of the export against its source",
                gate,
                kind,
                src.base,
                src.adapter,
                files[0],
                result.files[0],
            )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    (work / "export.json").write_text(json.dumps(_record(src, result, files), indent=1))
    failures = list(report.failures) if report is not None and not report.passed else []
    if result.task_eval is not None and not result.task_eval.passed:
        failures += list(result.task_eval.failures)
    if failures:
        failed = target.with_name(target.name + ".unverified")
        shutil.rmtree(failed, ignore_errors=True)
        work.rename(failed)
        raise VerificationError(
            "the export failed verification: " + "; ".join(failures),
            failures,
            where=str(failed / "export.json"),
            fix="see the report; --no-verify (numeric check) or --no-eval (task eval) keeps "
            "an unverified export at your own risk",
        )
    work.rename(target)
    result.job_id = src.job_id
    return result


def _merged(src: Source, work: Path, steps: _Steps, verify: bool) -> VerifyReport | None:
    from exporters.merge import merge
    from exporters.verify import verify_merged

    assert src.adapter is not None
    steps.run("merge adapter into the 16-bit base", merge, src.adapter, src.base, work)
    if not verify:
        return None
    return steps.run(
        "verify merged vs base+adapter", verify_merged, work, source=src.base, adapter=src.adapter
    )


def _gguf(
    src: Source, work: Path, gguf_type: str, split: str | None, steps: _Steps, verify: bool
) -> tuple[list[Path], VerifyReport | None]:
    from exporters.merge import merge
    from exporters.verify import verify_gguf

    scratch = Path(tempfile.mkdtemp(prefix="_scratch-", dir=work))
    model = src.base
    if src.adapter is not None:
        model = scratch / "merged"
        steps.run("merge adapter into the 16-bit base", merge, src.adapter, src.base, model)
    log = work / "convert.log"
    final = work / f"{src.name}-{gguf_type}.gguf"
    if gguf_type in CONVERTER_TYPES:
        files = steps.run(
            f"convert to GGUF {gguf_type}",
            convert,
            model,
            final,
            outtype=gguf_type,
            split_max_size=split,
            log=log,
        )
    else:
        f16 = scratch / "f16.gguf"
        steps.run("convert to GGUF f16", convert, model, f16, log=log)
        files = [steps.run(f"quantize to {gguf_type}", quantize, f16, final, gguf_type, log=log)]
    report = None
    if verify:
        report = steps.run(
            f"verify {gguf_type} in llama.cpp vs the source",
            verify_gguf,
            files[0],
            source=src.base,
            adapter=src.adapter,
            gguf_type=gguf_type,
        )
    shutil.rmtree(scratch)
    return files, report


def _gguf_adapter(
    src: Source, work: Path, gguf_type: str, steps: _Steps, verify: bool
) -> tuple[list[Path], VerifyReport | None]:
    from exporters.verify import safetensor_dtypes, verify_gguf

    assert src.adapter is not None
    log = work / "convert.log"
    out = work / f"{src.name}-lora-{gguf_type}.gguf"
    steps.run(
        "convert adapter to a GGUF LoRA",
        adapter_to_gguf,
        src.adapter,
        src.base,
        out,
        outtype=gguf_type,
        log=log,
    )
    report = None
    if verify:
        # the base for the check in the source's own precision: a bf16 base written as f16
        # moves logits by more than f16's bound on its own (SmolLM2-135M: 0.06-0.08), which
        # says nothing about the adapter; the check is then held to bf16's threshold
        check_type = "bf16" if "BF16" in safetensor_dtypes(src.base) else "f16"
        scratch = Path(tempfile.mkdtemp(prefix="_scratch-", dir=work))
        base_gguf = steps.run(
            f"convert the base to GGUF {check_type} (for the check)",
            convert,
            src.base,
            scratch / f"base-{check_type}.gguf",
            outtype=check_type,
            log=log,
        )[0]
        report = steps.run(
            "verify base+adapter in llama.cpp vs PEFT",
            verify_gguf,
            base_gguf,
            source=src.base,
            adapter=src.adapter,
            lora_gguf=out,
            gguf_type=check_type if check_type == "bf16" else gguf_type,
        )
        shutil.rmtree(scratch)
    return [out], report


def _record(src: Source, result: ExportResult, files: list[Path]) -> dict[str, Any]:
    return {
        **result.to_json(),
        "source": {
            "base": str(src.base),
            "adapter": str(src.adapter) if src.adapter else None,
            "job_id": src.job_id,
        },
        "sha256": {f.name: sha256_file(f) for f in files if f.is_file()},
    }
