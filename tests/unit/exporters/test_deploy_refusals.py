"""What deploy refuses before any target is touched (no SDK, no server needed)."""

from __future__ import annotations

import pytest

from gateway.errors import ExportError
from gateway.facade.deploy import deploy


def test_deploy_refuses_what_it_cannot_serve(tmp_path):
    with pytest.raises(ExportError, match="not a GGUF file, an export folder"):
        deploy("nothing-here", "ollama")
    (tmp_path / "a.gguf").write_bytes(b"GGUF")
    (tmp_path / "b.gguf").write_bytes(b"GGUF")
    with pytest.raises(ExportError, match="2 model GGUF files"):
        deploy(str(tmp_path), "ollama")
