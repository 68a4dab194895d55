"""The catalog: models, hardware, prices, calibration and provider rules, as data.

Bundled YAML files are merged with the user's overrides in `$TUNEGATE_HOME/catalog/*.yaml`
(same file names; models replace by id, everything else merges key by key), so a price that
changed yesterday is one line in a user file, not a release.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.catalog.hf_config import model_from_hf_cache
from gateway.catalog.schema import Hardware, HardwareFile, ModelInfo, ModelsFile
from gateway.catalog.tables import CalibrationFile, PricesFile, RulesFile
from gateway.errors import CatalogError, UnknownModelError

_HERE = Path(__file__).parent
FILES = ("models.yaml", "hardware.yaml", "prices.yaml", "calibration.yaml", "rules.yaml")
# the checked shape of each merged file (models and hardware are read into their types)
SCHEMAS = {
    "models.yaml": ModelsFile,
    "hardware.yaml": HardwareFile,
    "prices.yaml": PricesFile,
    "calibration.yaml": CalibrationFile,
    "rules.yaml": RulesFile,
}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def tunegate_home() -> Path:
    """Where the journal, caches and user overrides live."""
    env = os.environ.get("TUNEGATE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share" / "tunegate"


@dataclass
class Catalog:
    models: list[ModelInfo]
    hardware: dict[str, Hardware]
    prices: dict[str, Any]  # checked against tables.PricesFile when loaded
    calibration: dict[str, Any]  # checked against tables.CalibrationFile when loaded
    rules: RulesFile
    overrides: list[Path] = field(default_factory=list)
    _index: dict[str, ModelInfo] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for model in self.models:
            for name in model.all_names():
                self._index[_norm(name)] = model

    def model(self, name: str) -> ModelInfo:
        """Find a model by HF id (base or instruct), alias, local path or the local HF cache."""
        found = self._index.get(_norm(name))
        if found:
            return found
        found = model_from_hf_cache(name)
        if found:
            return found
        raise UnknownModelError(
            f"unknown base model '{name}': not in the catalog and no config.json for it in the "
            "local Hugging Face cache",
            fix=(
                "run `tunegate models` for the known ids; or add it to "
                f"{tunegate_home() / 'catalog' / 'models.yaml'} (see docs/catalog.md); or put its "
                f"config.json in the HF cache: `huggingface-cli download {name} config.json`"
            ),
        )

    def hw(self, hardware_id: str) -> Hardware:
        try:
            return self.hardware[hardware_id]
        except KeyError:
            known = ", ".join(sorted(self.hardware))
            raise CatalogError(
                f"unknown hardware '{hardware_id}'", fix=f"use one of: {known}"
            ) from None

    def unsourced(self) -> list[str]:
        """Price and calibration blocks that lack `source` or `as_of` (the test suite keeps this empty)."""
        blocks: list[tuple[str, Any]] = [("electricity", self.prices.get("electricity"))]
        for section in ("training", "serving"):
            blocks += [(f"{section}.{k}", v) for k, v in self.prices.get(section, {}).items()]
        blocks += [(k, self.prices.get(k)) for k in ("hosted_throughput", "self_hosting")]
        blocks += [
            (f"calibration.{k}", self.calibration.get(k))
            for k in ("flops", "memory", "setup_hours")
        ]
        blocks += [
            (f"calibration.stacks.{k}", v) for k, v in self.calibration.get("stacks", {}).items()
        ]
        missing = [
            name
            for name, block in blocks
            if not (isinstance(block, dict) and "source" in block and "as_of" in block)
        ]
        missing += [
            f"calibration.measured[{i}]"
            for i, m in enumerate(self.calibration.get("measured", []))
            if "source" not in m
        ]
        return missing


def _norm(name: str) -> str:
    name = name.strip().lower().rstrip("/")
    for suffix in ("-bnb-4bit", "-unsloth-bnb-4bit", "-4bit", "-gguf", "-mlx"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise CatalogError(f"not valid YAML: {getattr(exc, 'problem', exc)}", where=where) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CatalogError("expected a mapping at the top level", where=str(path))
    return data


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _merge(base.get(key), value) if key in base else value
        return merged
    return over


def _schema_error(name: str, exc: ValidationError, user_file: Path | None) -> CatalogError:
    """`file:line: key: what is wrong`, in the user's override when the key is theirs."""
    from gateway.util.yaml_lines import line_of

    user = _read(user_file) if user_file is not None else {}
    lines = []
    for err in exc.errors()[:5]:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        where = user_file if user_file is not None and _has(user, loc) else _HERE / name
        line = line_of(where.read_text(encoding="utf-8"), loc)
        key = ".".join(str(p) for p in loc) or "<top>"
        lines.append(f"{where}:{line}: {key}: {err['msg']}")
    return CatalogError("\n".join(lines), fix="see docs/catalog.md for the format")


def _has(data: Any, loc: tuple[Any, ...]) -> bool:
    """Whether the key path `loc` is written in `data` (the user's file, read once)."""
    for part in loc:
        if (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and part < len(data)
        ):
            data = data[part]
        else:
            return False
    return True


@lru_cache(maxsize=8)
def _load(home: str) -> Catalog:
    raw = {name: _read(_HERE / name) for name in FILES}
    overrides: list[Path] = []
    user_dir = Path(home) / "catalog"
    for name in FILES:
        user_file = user_dir / name
        if not user_file.is_file():
            continue
        overrides.append(user_file)
        user = _read(user_file)
        if name == "models.yaml":
            by_id = {m["id"]: m for m in raw[name].get("models", [])}
            for m in user.get("models", []):
                by_id[m.get("id")] = m
            raw[name] = {**raw[name], "models": list(by_id.values())}
        else:
            raw[name] = _merge(raw[name], user)
    checked = {}
    for name, schema in SCHEMAS.items():
        try:
            checked[name] = schema.model_validate(raw[name])
        except ValidationError as exc:
            user_file = user_dir / name
            raise _schema_error(name, exc, user_file if user_file.is_file() else None) from None
    hardware = {
        k: v.model_copy(update={"id": k}) for k, v in checked["hardware.yaml"].hardware.items()
    }
    return Catalog(
        checked["models.yaml"].models,
        hardware,
        raw["prices.yaml"],
        raw["calibration.yaml"],
        checked["rules.yaml"],
        overrides,
    )


def load_catalog(home: Path | None = None) -> Catalog:
    """The catalog in force: bundled files merged with `$TUNEGATE_HOME/catalog/*.yaml`."""
    return _load(str(home or tunegate_home()))


__all__ = ["Catalog", "Hardware", "ModelInfo", "load_catalog", "tunegate_home"]
