"""Will the chosen export work for this base model? Asked before training, not after a paid run.

`deep=False` (what `tunegate plan` uses) reads only the catalog, the model's local files and the
converter cache: no ML framework, no network. `deep=True` (`tunegate export --check`) also
fetches the converter if needed and runs the model's tokenizer through llama.cpp's
pre-tokenizer table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import TunegateError


@dataclass
class Finding:
    check: str
    ok: bool | None  # None: could not be decided here (said why in detail)
    detail: str
    fix: str | None = None


@dataclass
class ExportCheck:
    base: str
    to: str
    quant: str | None
    adapter_only: bool
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok is not False for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def add(self, check: str, ok: bool | None, detail: str, fix: str | None = None) -> None:
        self.findings.append(Finding(check, ok, detail, fix))


def _local_files(base: str) -> Path | None:
    from gateway.catalog.models import local_model

    try:
        return local_model(base)
    except TunegateError:
        return None


def _catalog_info(base: str) -> Any:
    from gateway.catalog import load_catalog

    try:
        return load_catalog().model(base)
    except TunegateError:
        return None


def _cached_converter(deep: bool) -> tuple[Any, str | None]:
    from exporters.converter import cache_root, get_converter, installed_version

    try:
        version = installed_version()
    except TunegateError as exc:
        return None, exc.message
    if deep:
        try:
            return get_converter(version), None
        except TunegateError as exc:
            return None, exc.message
    root = cache_root() / "llama.cpp" / f"llama-cpp-python-{version}"
    if (root / "convert_hf_to_gguf.py").is_file():
        from exporters.converter import Converter

        return Converter(root, version), None
    return None, f"the converter for llama-cpp-python {version} is not fetched yet"


def check_export(
    spec: Any = None,
    *,
    base: str | None = None,
    to: str | None = None,
    quant: str | None = None,
    adapter_only: bool | None = None,
    method: str | None = None,
    group_size: int | None = None,
    deep: bool = True,
) -> ExportCheck:
    """Findings for exporting `spec` (a JobSpec) or `base` to `to` (default: spec's or gguf)."""
    cfg = getattr(spec, "export", None)
    base = base or spec.base_model
    to = to or (cfg.to if cfg else "gguf")
    default_quant = {"gguf": "q4_k_m", "mlx": "float16"}.get(to)
    quant = quant or (cfg.quant if cfg else None) or default_quant
    adapter_only = bool(adapter_only if adapter_only is not None else (cfg and cfg.adapter_only))
    method = method or (spec.method if spec is not None else "lora")
    group_size = group_size or (cfg.group_size if cfg else 64)
    result = ExportCheck(base, to, quant if to in ("gguf", "mlx") else None, adapter_only)
    local = _local_files(base)
    info = _catalog_info(base)
    if method == "qlora":
        result.add("qlora", True, "the adapter is merged into the 16-bit base, not the 4-bit one")
    if method == "full" and (adapter_only or to == "merged"):
        result.add(
            "method",
            False,
            "full fine-tuning makes a whole model: nothing to merge",
            "use --to gguf without --adapter-only",
        )
    if adapter_only and method == "dora":
        result.add(
            "adapter",
            False,
            "DoRA has no GGUF adapter form in llama.cpp",
            "export the merged model (drop adapter_only)",
        )
    if to == "mlx":
        _mlx(result, _local_files(base), quant or "float16", group_size, adapter_only, deep)
        return result
    if to != "gguf":
        result.add("merge", True, "the merge needs only the base's safetensors (shard by shard)")
        return result
    conv, why = _cached_converter(deep)
    config = json.loads((local / "config.json").read_text()) if local else {}
    arch = (config.get("architectures") or [None])[0] or (info.architecture if info else None)
    if conv is None:
        result.add(
            "converter",
            None if not deep else False,
            why or "no converter",
            "pip install 'tunegate[gguf]'; tunegate export --check fetches the converter",
        )
    elif not arch:
        result.add("architecture", None, "architecture unknown (model not local, not in catalog)")
    elif arch in conv.architectures():
        result.add("architecture", True, f"{arch} is supported by llama.cpp {conv.version}")
    else:
        result.add(
            "architecture",
            False,
            f"{arch} is not supported by llama.cpp's converter (llama-cpp-python {conv.version})",
            "pip install -U llama-cpp-python, or export --to merged",
        )
    _tokenizer(result, local, conv, deep)
    _template(result, local, info)
    hidden = config.get("hidden_size") or (info.hidden if info else 0)
    if quant and "_k" in quant and hidden and hidden % 256:
        result.add(
            "quant",
            None,
            f"hidden size {hidden} is not a multiple of 256: {quant} falls "
            "back to other types for those rows",
            "q8_0 keeps the file predictable",
        )
    return result


def _mlx(
    result: ExportCheck,
    local: Path | None,
    quant: str,
    group_size: int,
    adapter_only: bool,
    deep: bool,
) -> None:
    """mlx-lm installed, the architecture implemented by it, quantization groups that fit."""
    import importlib.util

    if importlib.util.find_spec("mlx_lm") is None:
        result.add(
            "mlx-lm",
            False,
            "mlx-lm is not installed",
            "pip install 'tunegate[mlx]' (Linux: mlx[cpu])",
        )
        return
    result.add("mlx-lm", True, "installed")
    if local is None:
        result.add("architecture", None, "the base is not on this machine; checked at export time")
        return
    config = json.loads((local / "config.json").read_text())
    kind = str(config.get("model_type") or "")
    if not deep:
        result.add("architecture", None, f"{kind}: checked by `tunegate export --check`")
    elif importlib.util.find_spec(f"mlx_lm.models.{kind}") is not None:
        result.add("architecture", True, f"mlx-lm implements {kind}")
    else:
        result.add(
            "architecture",
            False,
            f"mlx-lm has no implementation of {kind or 'this model type'}",
            "pip install -U mlx-lm, or export --to gguf",
        )
    from exporters.formats import MLX_QUANT_BITS

    bits = MLX_QUANT_BITS.get(quant)
    hidden = int(config.get("hidden_size") or 0)
    if bits and not adapter_only and hidden and hidden % group_size:
        result.add(
            "quant",
            False,
            f"hidden size {hidden} is not a multiple of the group size {group_size}",
            "choose --group-size 32, or a float type",
        )
    elif bits:
        result.add("quant", True, f"{bits}-bit in groups of {group_size}")


def _ollama(result: ExportCheck, template: str, local: Path) -> None:
    """Whether `tunegate deploy --to ollama` can translate this chat template."""
    try:
        from exporters.chat_format import detect
    except ImportError:  # pragma: no cover - jinja2 comes with every ML extra
        return
    cfg_file = local / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}

    def text(value: Any) -> str:
        return str(value.get("content") if isinstance(value, dict) else value or "")

    try:
        fmt = detect(template, text(cfg.get("bos_token")), text(cfg.get("eos_token")))
    except TunegateError as exc:
        result.add("ollama template", None, exc.message, exc.fix)
        return
    result.add("ollama template", True, f"{fmt.family.name} layout, stops {', '.join(fmt.stops)}")


def _tokenizer(result: ExportCheck, local: Path | None, conv: Any, deep: bool) -> None:
    if local is None:
        result.add(
            "tokenizer",
            None,
            "the base is not on this machine; its tokenizer is checked at export time",
            "download the base model, then run the check again",
        )
        return
    if (local / "tokenizer.model").is_file():
        result.add("tokenizer", True, "SentencePiece (tokenizer.model)")
        return
    if not (local / "tokenizer.json").is_file():
        result.add("tokenizer", False, "no tokenizer.model or tokenizer.json in the base folder")
        return
    if not (deep and conv and conv.probe_text()):
        result.add(
            "tokenizer",
            None,
            "BPE tokenizer: checked against llama.cpp's table by `tunegate export --check`",
        )
        return
    from hashlib import sha256

    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(local).encode(conv.probe_text())
    name = conv.pre_tokenizer_hashes().get(sha256(str(ids).encode()).hexdigest())
    if name:
        result.add("tokenizer", True, f"BPE pre-tokenizer known to llama.cpp as {name!r}")
    else:
        result.add(
            "tokenizer",
            False,
            "llama.cpp's converter does not know this BPE "
            "pre-tokenizer (tokenization would differ from the model's)",
            "pip install -U llama-cpp-python, or export --to merged",
        )


def _template(result: ExportCheck, local: Path | None, info: Any) -> None:
    if local is None:
        family = info.chat_template if info else None
        if family:
            result.add("chat template", True, f"{family} (from the catalog)")
        else:
            result.add("chat template", None, "unknown until the base is on this machine")
        return
    template = None
    if (local / "chat_template.jinja").is_file():
        template = (local / "chat_template.jinja").read_text()
    elif (local / "tokenizer_config.json").is_file():
        template = json.loads((local / "tokenizer_config.json").read_text()).get("chat_template")
    if not template:
        result.add(
            "chat template",
            False,
            "the base has no chat template: the GGUF could not "
            "carry one and chat clients would guess",
            "train from an instruct variant, or add chat_template.jinja to the base folder",
        )
        return
    result.add("chat template", True, "present; written into the GGUF")
    _ollama(result, template, local)
    ends, eos = _end_tokens(local)
    marker = _turn_end_text(template, eos)
    if marker is None:
        result.add("end of turn", None, "could not read the turn-end token from the template")
    elif marker in ends:
        result.add("end of turn", True, f"{marker!r} ends a turn and is an end-of-sequence token")
    else:
        result.add(
            "end of turn",
            False,
            f"the template ends turns with {marker!r}, which is not "
            f"an end-of-sequence token ({', '.join(sorted(ends)) or 'none'}): chats "
            "would not stop",
            "set eos_token / generation_config eos_token_id to it",
        )


def _end_tokens(local: Path) -> tuple[set[str], str]:
    """End-of-sequence tokens as text, from tokenizer_config and generation_config ids."""
    ends: set[str] = set()
    cfg_file = local / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
    eos = cfg.get("eos_token")
    if isinstance(eos, dict):
        eos = eos.get("content")
    if eos:
        ends.add(eos)
    ids: list[int] = []
    for name in ("generation_config.json", "config.json"):
        if (local / name).is_file():
            value = json.loads((local / name).read_text()).get("eos_token_id")
            ids += value if isinstance(value, list) else [value] if value is not None else []
    if ids and (local / "tokenizer.json").is_file():
        added = json.loads((local / "tokenizer.json").read_text()).get("added_tokens", [])
        ends.update(t["content"] for t in added if t.get("id") in ids)
    return ends, eos or ""


def _turn_end_text(template: str, eos: str) -> str | None:
    """Render user→assistant with the template (plain Jinja) and read what follows the answer."""
    import re

    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = lambda msg: (_ for _ in ()).throw(ValueError(msg))
        text = env.from_string(template).render(
            messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Zq7"}],
            add_generation_prompt=False,
            bos_token="",
            eos_token=eos,
        )
    except Exception:  # templates are user code; any failure means "cannot tell"
        return None
    tail = text[text.rfind("Zq7") + 3 :] if "Zq7" in text else ""
    match = re.match(r"\s*(<[^<>\s]+>|\[[^\[\]\s]+\])", tail)
    return match.group(1) if match else None
