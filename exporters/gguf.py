"""HF model → GGUF (f16/bf16/q8_0 by llama.cpp's converter; K-quants by llama.cpp's quantizer),
and PEFT adapter → GGUF LoRA adapter.

The converter runs as a subprocess with its own gguf-py (see `converter.py`); the quantizer runs
in a child process too (`python -m exporters._quantize`), so its C-side log and any crash stay
out of the caller. Failures the converter is known for become one sentence and the fix.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from exporters.adapter import Adapter, read_adapter
from exporters.converter import Converter, get_converter
from exporters.formats import GGUF_CONVERTER_TYPES, GGUF_K_QUANTS, GGUF_TYPES
from gateway.errors import ExportError

CONVERTER_TYPES, K_QUANTS, TYPES = GGUF_CONVERTER_TYPES, GGUF_K_QUANTS, GGUF_TYPES


def check_type(quant: str) -> str:
    q = quant.lower().replace("-", "_")
    if q not in TYPES:
        raise ExportError(f"unknown GGUF type {quant!r}", fix=f"one of: {', '.join(TYPES)}")
    return q


def _run(cmd: list[str], conv: Converter, log: Path, what: str) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, env=conv.env(), stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode == 0:
        return
    text = log.read_text(errors="replace")
    tail = "\n".join(text.strip().splitlines()[-6:])
    version = f"llama-cpp-python {conv.version}"
    if "BPE pre-tokenizer was not recognized" in text:
        raise ExportError(
            f"{what}: llama.cpp's converter ({version}) does not know this model's BPE "
            "pre-tokenizer, so llama.cpp would tokenize differently from the model",
            where=str(log),
            fix="pip install -U llama-cpp-python (a newer llama.cpp may know it), then export "
            "again; or export --to merged and serve with transformers/vLLM",
        )
    missing = re.search(r"No module named '([\w.]+)'", text)
    if missing:  # the converter runs in a subprocess: name the extra that brings the package
        from gateway.catalog.extras import missing as missing_extra

        err = missing_extra(missing.group(1), f"{what} (llama.cpp's converter)")
        raise ExportError(err.message, where=str(log), fix=err.fix)
    if "is not supported" in text and "Model" in text:
        raise ExportError(
            f"{what}: llama.cpp's converter ({version}) does not support this architecture",
            where=str(log),
            fix="pip install -U llama-cpp-python, or export --to merged (or --to mlx)",
        )
    raise ExportError(f"{what} failed (exit {proc.returncode}):\n{tail}", where=str(log))


def convert(
    model: Path,
    out: Path,
    *,
    outtype: str = "f16",
    split_max_size: str | None = None,
    log: Path | None = None,
    converter: Converter | None = None,
) -> list[Path]:
    """`model` (an HF folder) → `out`; several `-0000k-of-0000n.gguf` files when split."""
    if outtype not in CONVERTER_TYPES:
        raise ExportError(
            f"the converter writes {', '.join(CONVERTER_TYPES)}; {outtype} is made by quantize()"
        )
    conv = converter or get_converter()
    cmd = [sys.executable, str(conv.hf_script), str(model), "--outfile", str(out)]
    cmd += ["--outtype", outtype]
    if split_max_size:
        cmd += ["--split-max-size", split_max_size]
    _run(cmd, conv, log or out.with_suffix(".log"), "GGUF conversion")
    if out.exists():
        return [out]
    parts = sorted(out.parent.glob(f"{out.stem}-*-of-*.gguf"))
    if not parts:
        raise ExportError("the converter finished but wrote no file", where=str(out.parent))
    return parts


def quantize(src: Path, dst: Path, quant: str, *, log: Path | None = None) -> Path:
    """A K-quant (or q4_0) of an f16/bf16/f32 GGUF by llama.cpp's own quantizer."""
    quant = check_type(quant)
    if quant not in K_QUANTS:
        raise ExportError(f"{quant} is written by the converter, not the quantizer")
    log = log or dst.with_suffix(".log")
    with log.open("a") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "exporters._quantize", str(src), str(dst), K_QUANTS[quant]],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
    if proc.returncode != 0 or not dst.exists():
        tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-4:])
        raise ExportError(f"quantizing to {quant} failed:\n{tail}", where=str(log))
    return dst


def adapter_problems(ad: Adapter) -> list[str]:
    """Why this adapter cannot become a GGUF LoRA adapter (empty: it can)."""
    problems = []
    if ad.dora:
        problems.append(
            "DoRA adapters have no GGUF adapter form (llama.cpp applies plain LoRA only); "
            "export the merged model instead: --to gguf without --adapter-only"
        )
    if ad.replaced:
        names = ", ".join(sorted(ad.replaced)[:3])
        problems.append(
            f"the adapter replaces whole tensors ({names}; modules_to_save), which a GGUF "
            "adapter cannot carry; export the merged model instead"
        )
    return problems


def adapter_to_gguf(
    adapter: Path,
    base: Path,
    out: Path,
    *,
    outtype: str = "f16",
    log: Path | None = None,
    converter: Converter | None = None,
) -> Path:
    """A GGUF LoRA adapter that llama.cpp applies with the same effect PEFT does.

    llama.cpp scales every tensor pair by alpha/rank with one global alpha. rsLoRA (α/√r) and
    per-module rank/alpha patterns are therefore rewritten into a copy before conversion."""
    ad = read_adapter(adapter)
    problems = adapter_problems(ad)
    if problems:
        raise ExportError(problems[0], where=str(adapter))
    if outtype not in ("f32", "f16", "bf16", "q8_0"):
        raise ExportError(f"a GGUF adapter is written as f32, f16, bf16 or q8_0, not {outtype}")
    conv = converter or get_converter()
    with tempfile.TemporaryDirectory(prefix="tg-adapter-") as tmp:
        src = _llama_cpp_scaled(ad, Path(tmp)) if (ad.rslora or ad.patterned) else adapter
        cmd = [sys.executable, str(conv.lora_script), str(src), "--base", str(base)]
        cmd += ["--outfile", str(out), "--outtype", outtype]
        _run(cmd, conv, log or out.with_suffix(".log"), "GGUF adapter conversion")
    if not out.exists():
        raise ExportError("the adapter converter wrote no file", where=str(out.parent))
    return out


def _llama_cpp_scaled(ad: Adapter, folder: Path) -> Path:
    """A copy whose one global alpha gives every module PEFT's scale under llama.cpp's alpha/r.

    One value of scale·r over all modules (rsLoRA with one rank): alpha' = scale·r (α·√r),
    tensors untouched. Otherwise alpha' = r and each B is multiplied by scale_m·r_m/alpha', since
    llama.cpp applies alpha'/r_m with r_m read from the tensor's shape."""
    from safetensors.torch import load_file, save_file

    config = dict(ad.config)
    scales = {m.scale * m.rank for m in ad.modules.values()}
    config.update(use_rslora=False, rank_pattern={}, alpha_pattern={})
    out = folder / "adapter"
    out.mkdir()
    if len(scales) == 1:
        config["lora_alpha"] = scales.pop()
        shutil.copy2(ad.weights_file, out / ad.weights_file.name)
    else:
        alpha = float(config.get("r", 8))
        config["lora_alpha"] = alpha
        tensors = load_file(str(ad.weights_file))
        for mod in ad.modules.values():
            factor = mod.scale * mod.rank / alpha
            if not math.isclose(factor, 1.0):
                tensors[mod.b_key] = tensors[mod.b_key] * factor
        save_file(tensors, str(out / ad.weights_file.name))
    (out / "adapter_config.json").write_text(json.dumps(config, indent=1))
    return out
