"""The converter cache: fetched once from the package index, verified on every use, refetched
when corrupt. A local index on 127.0.0.1 serves a small synthetic sdist (PEP 691 JSON or
PEP 503 HTML), so these run offline."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from exporters.converter import get_converter
from gateway.errors import ExportError

VERSION = "9.9.9"
TOP = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/"


def _sdist(extra: dict[str, bytes] | None = None) -> bytes:
    files = {
        TOP + "convert_hf_to_gguf.py": b"print('convert')\n",
        TOP + "convert_lora_to_gguf.py": b"print('lora')\n",
        TOP + "LICENSE": b"MIT\n",
        TOP + "conversion/__init__.py": b"",
        TOP
        + "conversion/llama.py": b'@ModelBase.register("LlamaForCausalLM", "MistralForCausalLM")\n',
        TOP + "gguf-py/gguf/__init__.py": b"",
        TOP + "src/llama.cpp": b"// not wanted\n",
        f"llama_cpp_python-{VERSION}/README.md": b"not wanted\n",
        **(extra or {}),
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Index:
    def __init__(self, sdist: bytes, *, html: bool = False, bad_hash: bool = False):
        self.sdist, self.html, self.bad_hash = sdist, html, bad_hash
        self.hits: list[str] = []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                index.hits.append(self.path)
                name = f"llama_cpp_python-{VERSION}.tar.gz"
                digest = hashlib.sha256(index.sdist + (b"x" if index.bad_hash else b"")).hexdigest()
                if self.path.startswith("/simple/llama-cpp-python"):
                    if index.html:
                        body = f'<html><a href="/files/{name}#sha256={digest}">{name}</a></html>'
                        ctype = "text/html"
                    else:
                        body = json.dumps(
                            {
                                "files": [
                                    {
                                        "filename": name,
                                        "url": f"/files/{name}",
                                        "hashes": {"sha256": digest},
                                    }
                                ]
                            }
                        )
                        ctype = "application/vnd.pypi.simple.v1+json"
                    data = body.encode()
                elif self.path == f"/files/{name}":
                    data, ctype = index.sdist, "application/octet-stream"
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"

    def downloads(self) -> int:
        return sum(1 for h in self.hits if h.startswith("/files/"))

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def index(tmp_path, monkeypatch):
    made: list[_Index] = []

    def start(**kw) -> _Index:
        idx = _Index(kw.pop("sdist", None) or _sdist(), **kw)
        made.append(idx)
        monkeypatch.setenv("TUNEGATE_INDEX_URL", idx.url)
        return idx

    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TUNEGATE_RETRY_BUDGET_S", "0")
    yield start
    for idx in made:
        idx.close()


@pytest.mark.parametrize("html", [False, True])
def test_fetched_once_then_reused(index, html) -> None:
    idx = index(html=html)
    first = get_converter(VERSION)
    assert first.hf_script.read_text() == "print('convert')\n"
    assert (first.root / "gguf-py" / "gguf" / "__init__.py").exists()
    assert not (first.root / "src").exists() and not (first.root / "README.md").exists()
    assert first.architectures() == {"LlamaForCausalLM", "MistralForCausalLM"}
    again = get_converter(VERSION)
    assert again.root == first.root and idx.downloads() == 1


def test_corrupt_cache_is_detected_and_refetched(index) -> None:
    idx = index()
    conv = get_converter(VERSION)
    conv.hf_script.write_text("tampered")
    assert get_converter(VERSION).hf_script.read_text() == "print('convert')\n"
    (conv.root / "conversion" / "llama.py").unlink()
    get_converter(VERSION)
    assert idx.downloads() == 3
    # files Python adds when the converter runs (bytecode) are not corruption
    (conv.root / "conversion" / "__pycache__").mkdir()
    (conv.root / "conversion" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    get_converter(VERSION)
    assert idx.downloads() == 3


def test_checksum_mismatch_is_refused(index, tmp_path) -> None:
    index(bad_hash=True)
    with pytest.raises(ExportError, match="does not match"):
        get_converter(VERSION)
    assert not (tmp_path / "cache" / "llama.cpp" / f"llama-cpp-python-{VERSION}").exists()


def test_unsafe_member_is_refused(index) -> None:
    index(sdist=_sdist({TOP + "conversion/../../../evil.py": b"x"}))
    with pytest.raises(ExportError, match="unsafe member"):
        get_converter(VERSION)


def test_unreachable_index_names_the_fixes(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TUNEGATE_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("TUNEGATE_RETRY_BUDGET_S", "0")
    with pytest.raises(ExportError) as err:
        get_converter(VERSION)
    assert "TUNEGATE_LLAMA_CPP_SDIST" in str(err.value) and "TUNEGATE_INDEX_URL" in str(err.value)


def test_local_sdist_file(monkeypatch, tmp_path) -> None:
    sdist = tmp_path / f"llama_cpp_python-{VERSION}.tar.gz"
    sdist.write_bytes(_sdist())
    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TUNEGATE_LLAMA_CPP_SDIST", str(sdist))
    monkeypatch.setenv("TUNEGATE_INDEX_URL", "http://127.0.0.1:9/simple")
    assert get_converter(VERSION).lora_script.read_text() == "print('lora')\n"


def test_no_sdist_for_version(index) -> None:
    index()
    with pytest.raises(ExportError, match="no source distribution"):
        get_converter("0.0.1")


def test_real_converter_matches_installed_llama_cpp(converter_cache, monkeypatch) -> None:
    """The real thing: the converter of the installed version, with its gguf-py (unpacked from
    the sdist `make test` downloaded; fetching from an index is tested against a local one)."""
    pytest.importorskip("llama_cpp")
    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(converter_cache))
    conv = get_converter()
    from importlib.metadata import version

    assert conv.version == version("llama_cpp_python")
    assert {"LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"} <= conv.architectures()
    assert "smollm" in conv.pre_tokenizer_hashes().values()
    assert conv.probe_text() and (conv.root / "gguf-py" / "gguf" / "gguf_writer.py").exists()
    assert Path(conv.env()["PYTHONPATH"].split(":")[0]).name == "gguf-py"
