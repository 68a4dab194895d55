"""Shared fixtures: every test gets its own TUNEGATE_HOME and no provider keys."""

from __future__ import annotations

import pytest

from gateway.catalog import Catalog, load_catalog
from gateway.hardware import Machine

KEY_VARS = (
    "OPENAI_API_KEY",
    "TOGETHER_API_KEY",
    "FIREWORKS_API_KEY",
    "FIREWORKS_ACCOUNT_ID",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEGATE_HOME", str(tmp_path / "tg-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def cpu_machine() -> Machine:
    return Machine("cpu", "cpu", "test CPU", gpus=0, cores=2, ram_gb=24.0)


@pytest.fixture(scope="session")
def tiny_sp(tmp_path_factory):
    """A tiny SentencePiece Llama (hidden 256, briefly pretrained), built once per session."""
    pytest.importorskip("sentencepiece")
    pytest.importorskip("transformers")
    from tests.tiny_models import tiny_sp_llama

    return tiny_sp_llama(tmp_path_factory.mktemp("tiny-sp") / "model")


@pytest.fixture(scope="session")
def converter_cache(tmp_path_factory):
    """One llama.cpp converter cache per session (fetched from the package index once)."""
    return tmp_path_factory.mktemp("converter-cache")
