"""llama.cpp's own converter, matched to the installed llama-cpp-python.

The converter scripts, their `conversion/` package and the `gguf-py` beside them change in
lockstep with llama.cpp; pairing them with another llama.cpp (or the separate `gguf` wheel)
breaks in ways users cannot diagnose. So we take all three from the source distribution of the
exact llama-cpp-python that is installed (the same llama.cpp commit that will load and quantize
the file), fetched once from the package index into a cache and verified on every use.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from gateway.errors import ExportError

PACKAGE = "llama-cpp-python"
DEFAULT_INDEX = "https://pypi.org/simple"
_WANTED = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "LICENSE")
_WANTED_DIRS = ("conversion/", "gguf-py/")
_MANIFEST = "tunegate-manifest.json"
_FIX_INSTALL = "pip install 'tunegate[gguf]'  (llama-cpp-python builds from source: ~5 min)"


@dataclass(frozen=True)
class Converter:
    """A verified converter tree in the cache."""

    root: Path
    version: str

    @property
    def hf_script(self) -> Path:
        return self.root / "convert_hf_to_gguf.py"

    @property
    def lora_script(self) -> Path:
        return self.root / "convert_lora_to_gguf.py"

    def env(self) -> dict[str, str]:
        """The environment for a converter subprocess: its own gguf-py, never the wheel."""
        env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(self.root / "gguf-py"), str(self.root), env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
        env.setdefault("HF_HUB_OFFLINE", "1")
        return env

    def architectures(self) -> set[str]:
        """Every HF `architectures[0]` the converter registers a model class for."""
        found: set[str] = set()
        sources = [self.hf_script, *sorted((self.root / "conversion").glob("*.py"))]
        for path in sources:
            text = path.read_text(encoding="utf-8", errors="replace")
            for args in re.findall(r"@ModelBase\.register\(([^)]*)\)", text):
                found.update(re.findall(r"[\"']([A-Za-z0-9_]+)[\"']", args))
        return found

    def pre_tokenizer_hashes(self) -> dict[str, str]:
        """The BPE pre-tokenizer table (`chkhsh` → name) the converter recognises."""
        table: dict[str, str] = {}
        for path in sorted((self.root / "conversion").glob("*.py")):
            text = path.read_text(encoding="utf-8", errors="replace")
            for digest, name in re.findall(
                r'chkhsh == "([0-9a-f]{64})":\s*\n(?:\s*#[^\n]*\n)*\s*res = "([^"]+)"', text
            ):
                table[digest] = name
        return table

    def probe_text(self) -> str | None:
        """The string whose token ids are hashed to identify a BPE pre-tokenizer."""
        base = self.root / "conversion" / "base.py"
        if not base.exists():
            return None
        match = re.search(r"chktxt = ('(?:[^'\\]|\\.)*')", base.read_text(encoding="utf-8"))
        if not match:
            return None
        import ast

        return str(ast.literal_eval(match.group(1)))


def installed_version() -> str:
    """The llama-cpp-python version in this environment (the one that loads and quantizes)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        raise ExportError(
            "GGUF export needs llama-cpp-python, which is not installed", fix=_FIX_INSTALL
        ) from None


def cache_root() -> Path:
    """`$TUNEGATE_CACHE_DIR`, else the `cache/` folder of tunegate's home."""
    env = os.environ.get("TUNEGATE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from gateway.catalog import tunegate_home

    return tunegate_home() / "cache"


def get_converter(version: str | None = None, *, progress: bool = False) -> Converter:
    """The converter for `version` (default: installed), fetched on first use, else reused.

    A cache whose files no longer match their recorded hashes is refetched, never used."""
    version = version or installed_version()
    root = cache_root() / "llama.cpp" / f"{PACKAGE}-{version}"
    if _intact(root):
        return Converter(root, version)
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    local = os.environ.get("TUNEGATE_LLAMA_CPP_SDIST")
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".fetch-") as tmp:
        if local:
            sdist, digest = Path(local).expanduser(), None
            if not sdist.is_file():
                raise ExportError(
                    f"TUNEGATE_LLAMA_CPP_SDIST={local} is not a file",
                    fix=f"pip download {PACKAGE}=={version} --no-deps --no-binary :all:",
                )
        else:
            sdist, digest = _download_sdist(version, Path(tmp), progress=progress)
        staged = Path(tmp) / "tree"
        _extract(sdist, staged, digest or sha256_file(sdist))
        try:
            staged.rename(root)
        except OSError:  # another process finished first; use its copy if it is whole
            if not _intact(root):
                raise
    if not _intact(root):
        raise ExportError(
            f"the converter unpacked into {root} does not verify", fix=f"rm -r {root}"
        )
    return Converter(root, version)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _intact(root: Path) -> bool:
    try:
        manifest = json.loads((root / _MANIFEST).read_text())
        files: dict[str, str] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not files or "convert_hf_to_gguf.py" not in files:
        return False
    return all((root / rel).is_file() and sha256_file(root / rel) == h for rel, h in files.items())


def _wanted(rel: str) -> bool:
    return rel in _WANTED or rel.startswith(_WANTED_DIRS)


def _extract(sdist: Path, dest: Path, sdist_sha256: str) -> None:
    """Stream the sdist and keep only the converter tree, refusing any unsafe member."""
    marker = "/vendor/llama.cpp/"
    files: dict[str, str] = {}
    try:
        with tarfile.open(sdist, "r|*") as tar:
            for member in tar:
                _, sep, rel = member.name.partition(marker)
                if not sep or not rel or not _wanted(rel) or member.isdir():
                    continue
                parts = Path(rel).parts
                if Path(rel).is_absolute() or ".." in parts or not member.isfile():
                    raise ExportError(f"unsafe member {member.name!r}", where=str(sdist))
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                assert src is not None
                digest = hashlib.sha256()
                with target.open("wb") as out:
                    for block in iter(lambda src=src: src.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
                files[rel] = digest.hexdigest()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ExportError(f"cannot read the source distribution: {exc}", where=str(sdist)) from exc
    if "convert_hf_to_gguf.py" not in files or "gguf-py/gguf/__init__.py" not in files:
        raise ExportError(
            "this source distribution has no llama.cpp converter (vendor/llama.cpp)",
            where=str(sdist),
        )
    manifest = {"package": PACKAGE, "sdist": sdist.name, "sdist_sha256": sdist_sha256}
    (dest / _MANIFEST).write_text(json.dumps({**manifest, "files": files}, indent=1))


def _index_url() -> str:
    return os.environ.get("TUNEGATE_INDEX_URL", DEFAULT_INDEX).rstrip("/")


class _Links(HTMLParser):
    """PEP 503 HTML: <a href="URL#sha256=HEX">FILENAME</a>."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[dict[str, Any]] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data: str) -> None:
        if self._href:
            url, _, frag = self._href.partition("#")
            hashes = dict([frag.split("=", 1)]) if "=" in frag else {}
            self.files.append({"filename": data.strip(), "url": url, "hashes": hashes})
            self._href = None


def _sdist_entry(version: str) -> dict[str, Any]:
    import httpx

    from gateway.util.retry import http_timeout_s, idempotent

    page = f"{_index_url()}/{PACKAGE}/"
    accept = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"

    def _get() -> httpx.Response:
        resp = httpx.get(
            page, headers={"Accept": accept}, timeout=http_timeout_s(), follow_redirects=True
        )
        resp.raise_for_status()
        return resp

    try:
        resp = idempotent(_get, what="package index")
    except httpx.HTTPError as exc:
        raise ExportError(
            f"cannot reach the package index {page}: {exc}",
            fix=f"set TUNEGATE_INDEX_URL to a mirror, or TUNEGATE_LLAMA_CPP_SDIST to a local "
            f"{PACKAGE}-{version}.tar.gz (pip download {PACKAGE}=={version} --no-deps "
            f"--no-binary :all:)",
        ) from exc
    if "json" in resp.headers.get("content-type", ""):
        files = resp.json().get("files", [])
    else:
        parser = _Links()
        parser.feed(resp.text)
        files = parser.files
    name = f"{PACKAGE.replace('-', '_')}-{version}.tar.gz"
    for entry in files:
        if entry.get("filename", "").lower() in (name, f"{PACKAGE}-{version}.tar.gz"):
            entry["url"] = str(httpx.URL(page).join(entry["url"]))
            return entry
    raise ExportError(
        f"the index has no source distribution of {PACKAGE} {version}",
        where=page,
        fix="set TUNEGATE_LLAMA_CPP_SDIST to the sdist file, or install a released version",
    )


def _download_sdist(version: str, folder: Path, *, progress: bool) -> tuple[Path, str]:
    """The sdist in `folder`, its sha256 checked against the index's."""
    import httpx

    from gateway.util.retry import http_timeout_s

    entry = _sdist_entry(version)
    expected = (entry.get("hashes") or {}).get("sha256")
    target = folder / entry["filename"]
    digest = hashlib.sha256()
    bar = None
    if progress:
        from gateway.util.progress import ByteProgress

        bar = ByteProgress(f"llama.cpp converter ({PACKAGE} {version})").__enter__()
    try:
        with (
            httpx.stream("GET", entry["url"], timeout=http_timeout_s(), follow_redirects=True) as r,
            target.open("wb") as out,
        ):
            r.raise_for_status()
            total = int(r.headers.get("content-length") or 0) or None
            for block in r.iter_bytes(1 << 20):
                digest.update(block)
                out.write(block)
                if bar:
                    bar.update(r.num_bytes_downloaded, total)
    except httpx.HTTPError as exc:
        raise ExportError(f"downloading {entry['url']} failed: {exc}") from exc
    finally:
        if bar:
            bar.__exit__(None, None, None)
    got = digest.hexdigest()
    if expected and got != expected:
        raise ExportError(
            f"{target.name}: sha256 {got[:12]}… does not match the index's {expected[:12]}…",
            fix="retry; if it persists, the mirror serves a corrupt file",
        )
    return target, got
