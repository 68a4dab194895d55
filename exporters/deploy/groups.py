"""Engine groups: many LoRA fine-tunes of one base answering from one engine process.

A group is keyed by the engine and a hash of the base's files (config and weights), so only
adapters trained on the very same base share it. It lives in `$TUNEGATE_HOME/engines/<key>/`:
the base exported once to GGUF (verified like any export) and `group.json`, which keeps each
member's *reference* answers (`exporters.deploy.canary`), recorded when it joined from an
engine that held nothing else. Which members are live is the journal's business (deployments
with `meta.group`), not this file's.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporters.deploy.canary import Print, Probe

GROUP_QUANT = "q8_0"  # the shared base: half of f16, and LoRA on it stays close to PEFT's math
BASE = "base"  # the base's member key (adapters are keyed by their GGUF's hash)


def engines_home() -> Path:
    from gateway.catalog import tunegate_home

    return tunegate_home() / "engines"


def base_hash(folder: Path) -> str:
    """SHA-256 over the base's config and weight files (names and contents), cached by size
    and mtime so an 8B base is read once, not on every deploy."""
    files = sorted(
        p for p in folder.iterdir() if p.name == "config.json" or p.suffix == ".safetensors"
    )
    if not files:
        from gateway.errors import DeployError

        raise DeployError(f"{folder} holds no config.json or safetensors weights to hash")
    cache_file = engines_home() / "hashes.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    digest = hashlib.sha256()
    for f in files:
        stat = f.stat()
        stamp = f"{f.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        if stamp not in cache:
            from exporters.converter import sha256_file

            cache[stamp] = sha256_file(f)
        digest.update(f"{f.name}\0{cache[stamp]}\n".encode())
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache, indent=1))
    tmp.replace(cache_file)
    return digest.hexdigest()


def member_key(lora: Path | None) -> str:
    """A member's key in `group.json`: the base, or the adapter's content hash (its GGUF, or
    a PEFT folder's weights: a redeploy of the same adapter under another name is the same
    member)."""
    if lora is None:
        return BASE
    lora = Path(lora)
    weights = lora / "adapter_model.safetensors" if lora.is_dir() else lora
    stat = weights.stat()
    return _content_key(str(weights.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _content_key(path: str, size: int, mtime_ns: int) -> str:
    """Read once per file version: the registry and the canary ask for every member's key at
    every rebuild of a group."""
    from exporters.converter import sha256_file

    return sha256_file(Path(path))[:16]


@dataclass
class Group:
    key: str
    folder: Path
    base: Path  # the HF folder of the base, as the adapters name it
    engine_model: Path  # what the engine loads: the base GGUF (llama.cpp) or folder (vLLM)
    references: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> label, prints

    @property
    def file(self) -> Path:
        return self.folder / "group.json"

    def label(self, key: str) -> str:
        """The name a member is shown by (its deployment's name when it joined)."""
        return str(self.references.get(key, {}).get("label") or key)

    def prints(self) -> dict[str, list[Print]]:
        """Reference answers by label, as the canary's probes are named."""
        return {
            self.label(k): [Print.from_json(p) for p in v["prints"]]
            for k, v in self.references.items()
        }

    def remember(self, key: str, label: str, prints: list[Print]) -> None:
        taken = {self.label(k) for k in self.references if k != key}
        label = label if label not in taken else f"{label}@{key[:6]}"
        self.references[key] = {"label": label, "prints": [p.to_json() for p in prints]}
        self.save()

    def reference(
        self,
        key: str,
        label: str,
        argv: tuple[str, ...],
        probe: Probe,
        env: dict[str, str] | None = None,
    ) -> None:
        """Record a member's reference answers, once, from `argv`: an engine holding only it."""
        if key in self.references:
            return
        from exporters.deploy.canary import alone
        from exporters.deploy.process import started

        with started(argv, self.folder / "canary.log", timeout_s=900, env=env) as url:
            self.remember(key, label, alone(url, {}, [probe])[probe.name])

    def save(self) -> None:
        data = {
            "key": self.key,
            "base": str(self.base),
            "engine_model": str(self.engine_model),
            "references": self.references,
        }
        tmp = self.file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.file)


def load(folder: Path) -> Group | None:
    """The group recorded in `folder`, or None (never made, or its file is unreadable)."""
    try:
        data = json.loads((folder / "group.json").read_text())
    except (OSError, ValueError):
        return None
    return Group(
        data["key"],
        folder,
        Path(data["base"]),
        Path(data["engine_model"]),
        dict(data.get("references") or {}),
    )


def reference_prints(group_file: str | Path) -> dict[str, list[Print]]:
    """The reference answers a `group.json` keeps, by label (empty when it is unreadable:
    then the canary fails, naming every member it has no reference for)."""
    group = load(Path(group_file).parent)
    return group.prints() if group is not None else {}


def folder_group(engine: str, base: Path) -> Group:
    """The group of `base` for an engine that loads the HF folder itself (vLLM)."""
    key = f"{engine}-{base_hash(base)[:12]}"
    folder = engines_home() / key
    found = load(folder)
    if found is not None:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    group = Group(key, folder, base, base)
    group.save()
    return group


def open_group(engine: str, base: Path, *, progress: bool = False) -> Group:
    """The group of `base` for `engine`, made on first use: the base exported to a verified
    GGUF (`GROUP_QUANT`) beside its `group.json`."""
    from exporters.pipeline import export

    key = f"{engine}-{base_hash(base)[:12]}"
    folder = engines_home() / key
    found = load(folder)
    if found is not None and found.engine_model.is_file():
        return found
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"base-{GROUP_QUANT}"
    if out.exists():  # a base export interrupted before group.json was written
        import shutil

        shutil.rmtree(out)
    result = export(base, "gguf", quant=GROUP_QUANT, out=out, progress=progress)
    group = Group(key, folder, base, result.files[0])
    group.save()
    return group
