"""MLX export through mlx-lm: a merged model as an MLX folder (float, or 4/8-bit with a group
size), or a PEFT adapter as an mlx-lm adapter folder; both verified against the HF source.

Verification loads the result with mlx-lm and the source with transformers (+ PEFT), feeds both
the chat-template-rendered check prompts, and compares next-token logits at every position and
greedy continuations: float exports must give the same greedy tokens; quantized ones must agree
on the next token at a stated rate.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from exporters.formats import MLX_FLOAT_TYPES, MLX_QUANT_BITS, MLX_TYPES
from exporters.verify import CHECK_PROMPTS, VerifyReport, _end_ids, _greedy_hf, _load_source
from gateway.errors import ExportError

FLOAT_TYPES, QUANT_BITS = MLX_FLOAT_TYPES, MLX_QUANT_BITS
# next-token agreement (teacher-forced, every position) each quantized type must reach
MLX_TOP1 = {"q8": 0.95, "q6": 0.92, "q4": 0.85, "q3": 0.75}
GREEDY_TOKENS = 16
# float exports: (top-1 agreement, max |logit difference|) on the check prompts. A tiny model's
# float32 export measured (1.0, 0.0), float16 (1.0, 0.006), bfloat16 (0.994, 0.035); the same
# model without its adapter (0.914, 0.937). Like the GGUF f16/bf16 rules (exporters/verify.py).
FLOAT_CHECK: dict[str, tuple[float, float | None]] = {
    "float32": (1.0, 0.05),
    "float16": (0.99, None),
    "bfloat16": (0.98, None),
}


def is_mlx(path: Path) -> bool:
    """An MLX model folder: an MLX export (its export.json says so), or quantized by mlx-lm."""
    from exporters.record import read

    record = read(path) if path.is_dir() else None
    if record is not None:
        return record.kind == "mlx"
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config.get("quantization"), dict) and "bits" in config["quantization"]


def check_mlx_type(name: str) -> str:
    if name not in MLX_TYPES:
        raise ExportError(f"unknown MLX type {name!r}", fix=f"one of: {', '.join(MLX_TYPES)}")
    return name


def _import_mlx() -> Any:
    from gateway.catalog.extras import missing

    try:
        import mlx_lm
    except ImportError:
        err = missing("mlx_lm", "MLX export")
        raise ExportError(err.message, fix=err.fix) from None
    return mlx_lm


def convert_to_mlx(model: Path, out: Path, mlx_type: str, group_size: int = 64) -> Path:
    """`model` (an HF folder) into `out` (created) as MLX weights of `mlx_type`."""
    mlx_lm = _import_mlx()
    bits = QUANT_BITS.get(mlx_type)
    tmp = Path(tempfile.mkdtemp(prefix="_mlx-", dir=out.parent)) / "model"
    kwargs: dict[str, Any] = {"hf_path": str(model), "mlx_path": str(tmp)}
    if bits:
        kwargs.update(quantize=True, q_bits=bits, q_group_size=group_size)
    else:
        kwargs["dtype"] = mlx_type
    try:
        mlx_lm.convert(**kwargs)
    except ValueError as exc:  # e.g. a dimension not divisible by the group size
        raise ExportError(f"mlx-lm could not convert the model: {exc}") from None
    out.mkdir(parents=True, exist_ok=True)
    for item in tmp.iterdir():
        shutil.move(str(item), out / item.name)
    shutil.rmtree(tmp.parent, ignore_errors=True)
    if (model / "tokenizer.model").is_file() and not (out / "tokenizer.model").exists():
        shutil.copy2(model / "tokenizer.model", out / "tokenizer.model")  # mlx-lm drops it
    return out


def verify_mlx(
    mlx_model: Path,
    *,
    source: Path,
    adapter: Path | None,
    mlx_type: str,
    mlx_adapter: Path | None = None,
) -> VerifyReport:
    """Compare mlx-lm (model, or model + mlx adapter) with the HF source (+ PEFT adapter)."""
    import mlx.core as mx
    import numpy as np
    import torch

    mlx_lm = _import_mlx()
    report = VerifyReport(mlx_type)
    hf, tokenizer = _load_source(source, adapter)
    kwargs = {"adapter_path": str(mlx_adapter)} if mlx_adapter else {}
    model, mlx_tok = mlx_lm.load(str(mlx_model), **kwargs)
    ends = _end_ids(tokenizer, source)
    agree = total = exact = 0
    tokenizer_ok = True
    for messages in CHECK_PROMPTS:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        tokenizer_ok &= list(mlx_tok.encode(text, add_special_tokens=False)) == list(ids)
        with torch.no_grad():
            ref = hf(input_ids=torch.tensor([ids])).logits[0].float().numpy()
        got = np.array(model(mx.array([ids]))[0].astype(mx.float32))
        report.max_abs_logit_delta = max(report.max_abs_logit_delta, float(np.abs(ref - got).max()))
        agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
        total += len(ids)
        want = _greedy_hf(hf, ids, GREEDY_TOKENS, ends)
        exact += int(_greedy_mlx(model, ids, GREEDY_TOKENS, ends) == want)
    report.prompts, report.positions = len(CHECK_PROMPTS), total
    report.top1_agreement = agree / max(1, total)
    report.greedy_exact = exact / len(CHECK_PROMPTS)
    report.tokenizer_match = tokenizer_ok
    report.chat_template = bool(getattr(mlx_tok, "chat_template", None))
    if not tokenizer_ok:
        report.failures.append("mlx-lm tokenizes the check prompts differently from the source")
    if mlx_type in FLOAT_TYPES:
        # the same greedy text, and the logits themselves close: a greedy continuation alone
        # missed a model exported without its adapter (top-1 0.91, |dlogit| 0.94, same text)
        top1, delta = FLOAT_CHECK[mlx_type]
        report.threshold = {"greedy_exact": 1.0, "top1": top1, "max_delta": delta}
        if report.greedy_exact < 1.0:
            report.failures.append(
                f"greedy continuations differ on {len(CHECK_PROMPTS) - exact} of "
                f"{len(CHECK_PROMPTS)} check prompts ({mlx_type} should match exactly)"
            )
        if report.top1_agreement < top1:
            report.failures.append(
                f"next-token agreement {report.top1_agreement:.3f} is below {top1} for {mlx_type}"
            )
        if delta is not None and report.max_abs_logit_delta > delta:
            report.failures.append(
                f"max |logit difference| {report.max_abs_logit_delta:.4f} is above {delta} "
                f"for {mlx_type}"
            )
    else:
        need = MLX_TOP1[mlx_type]
        report.threshold = {"top1": need}
        if report.top1_agreement < need:
            report.failures.append(
                f"next-token agreement {report.top1_agreement:.3f} is below {need} for {mlx_type}"
            )
    return report


def _greedy_mlx(model: Any, ids: list[int], n: int, ends: set[int]) -> list[int]:
    import mlx.core as mx

    seq = list(ids)
    for _ in range(n):
        nxt = int(mx.argmax(model(mx.array([seq]))[0, -1]).item())
        if nxt in ends:
            break
        seq.append(nxt)
    return seq[len(ids) :]


def export_mlx(
    src: Any, work: Path, mlx_type: str, group_size: int, steps: Any, verify: bool
) -> tuple[list[Path], VerifyReport | None]:
    """A merged MLX model folder in `work` (the adapter merged first, if there is one)."""
    from exporters.merge import merge

    scratch = Path(tempfile.mkdtemp(prefix="_scratch-", dir=work.parent))
    try:
        model = src.base
        if src.adapter is not None:
            model = scratch / "merged"
            steps.run("merge adapter into the 16-bit base", merge, src.adapter, src.base, model)
        steps.run(f"convert to MLX {mlx_type}", convert_to_mlx, model, work, mlx_type, group_size)
        report = None
        if verify:
            report = steps.run(
                f"verify MLX {mlx_type} in mlx-lm vs the source",
                verify_mlx,
                work,
                source=src.base,
                adapter=src.adapter,
                mlx_type=mlx_type,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return [work], report


def export_mlx_adapter(
    src: Any, work: Path, steps: Any, verify: bool
) -> tuple[list[Path], VerifyReport | None]:
    """The PEFT adapter as an mlx-lm adapter folder, checked on an fp32 MLX copy of the base."""
    from providers.mlx.adapters import peft_to_mlx

    assert src.adapter is not None
    steps.run("convert the adapter to mlx-lm's layout", peft_to_mlx, src.adapter, work, src.base)
    report = None
    if verify:
        scratch = Path(tempfile.mkdtemp(prefix="_scratch-", dir=work.parent))
        try:
            base = steps.run(
                "convert the base to MLX float32 (for the check)",
                convert_to_mlx,
                src.base,
                scratch / "base",
                "float32",
            )
            report = steps.run(
                "verify base+adapter in mlx-lm vs PEFT",
                verify_mlx,
                base,
                source=src.base,
                adapter=src.adapter,
                mlx_type="float32",
                mlx_adapter=work,
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return [work], report
