"""The optional extras, defined once: what each is for and which packages it brings.

A missing optional package anywhere in tunegate becomes one line that names the extra to install
(`pip install 'tunegate[gguf]'`), never a traceback; `tunegate doctor` reads the same table.
`tests/unit/catalog/test_extras.py` proves it equals pyproject.toml's optional dependencies.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass

from gateway.errors import TunegateError


@dataclass(frozen=True)
class Extra:
    name: str
    purpose: str  # what it unlocks, said to the user when it is missing
    packages: tuple[str, ...]  # distribution names, as pyproject.toml lists them
    note: str = ""  # how to install it well (torch pinned first, a compile)

    @property
    def fix(self) -> str:
        """The install command, with the note that makes it go well."""
        return install_command(self.name) + (f"  ({self.note})" if self.note else "")


EXTRAS: dict[str, Extra] = {
    e.name: e
    for e in (
        Extra(
            "local",
            "local training (backend local), merging and the demo",
            ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "jsonschema"),
            "install torch pinned first (pip install torch==2.13.0): an unpinned torch pulls a "
            "multi-GB CUDA build",
        ),
        Extra("unsloth", "the unsloth backend (one NVIDIA GPU)", ("unsloth",)),
        Extra(
            "mlx",
            "the mlx backend and --to mlx exports",
            ("mlx-lm", "mlx"),
            "on Linux it brings mlx[cpu]",
        ),
        Extra(
            "gguf",
            "GGUF export, --to llamacpp/ollama deploys, SmolLM2 offline",
            ("llama-cpp-python", "gguf", "sentencepiece"),
            "llama-cpp-python compiles from source: about 5 minutes on 2 cores, cached after",
        ),
        Extra("together", "the together backend and deploy target", ("together", "zstandard")),
        Extra("fireworks", "the fireworks backend and deploy target", ("fireworks-ai",)),
        Extra("openai", "the openai backend and deploy target", ("openai",)),
        Extra("bedrock", "the bedrock backend and deploy target", ("boto3",)),
        Extra("ollama", "--to ollama deploys and chat", ("ollama",)),
        Extra("data", "near-duplicate detection and Parquet input", ("numpy", "pyarrow")),
        Extra(
            "eval",
            "tunegate eval regress (lm-evaluation-harness), the deltas chart",
            ("lm-eval", "matplotlib"),
        ),
        Extra(
            "serve",
            "tunegate serve (the OpenAI-compatible gateway and fine-tuning API, and llama.cpp's"
            " server behind it)",
            (
                "starlette",
                "uvicorn",
                "uvloop",
                "httptools",
                "python-multipart",
                "jinja2",
                "prometheus-client",
                "llama-cpp-python",
            ),
            "llama-cpp-python compiles from source: about 5 minutes on 2 cores, cached after",
        ),
        Extra(
            "postgres",
            "a PostgreSQL store shared by several `tunegate serve` replicas (--store postgresql://)",
            ("psycopg",),
            "psycopg[binary] brings its own libpq",
        ),
    )
}

# import name -> (distribution, extra) for every optional module tunegate imports, including
# packages an extra brings in indirectly (huggingface_hub comes with transformers)
MODULES: dict[str, tuple[str, str]] = {
    "torch": ("torch", "local"),
    "transformers": ("transformers", "local"),
    "jsonschema": ("jsonschema", "local"),
    "peft": ("peft", "local"),
    "trl": ("trl", "local"),
    "accelerate": ("accelerate", "local"),
    "datasets": ("datasets", "local"),
    "huggingface_hub": ("huggingface-hub", "local"),
    "safetensors": ("safetensors", "local"),
    "tokenizers": ("tokenizers", "local"),
    "jinja2": ("jinja2", "serve"),  # the dashboard (transformers brings it too)
    "unsloth": ("unsloth", "unsloth"),
    "mlx": ("mlx", "mlx"),
    "mlx_lm": ("mlx-lm", "mlx"),
    "llama_cpp": ("llama-cpp-python", "gguf"),
    "lm_eval": ("lm-eval", "eval"),
    "matplotlib": ("matplotlib", "eval"),
    "starlette": ("starlette", "serve"),
    "uvicorn": ("uvicorn", "serve"),
    "uvloop": ("uvloop", "serve"),
    "httptools": ("httptools", "serve"),
    "python_multipart": ("python-multipart", "serve"),
    "prometheus_client": ("prometheus-client", "serve"),
    "sse_starlette": ("llama-cpp-python", "serve"),  # what llama_cpp.server needs ([server])
    "starlette_context": ("llama-cpp-python", "serve"),
    "gguf": ("gguf", "gguf"),
    "sentencepiece": ("sentencepiece", "gguf"),
    "together": ("together", "together"),
    "zstandard": ("zstandard", "together"),
    "fireworks": ("fireworks-ai", "fireworks"),
    "openai": ("openai", "openai"),
    "boto3": ("boto3", "bedrock"),
    "botocore": ("botocore", "bedrock"),
    "ollama": ("ollama", "ollama"),
    "numpy": ("numpy", "data"),
    "pyarrow": ("pyarrow", "data"),
    "psycopg": ("psycopg", "postgres"),
}


class MissingExtraError(TunegateError):
    """An optional package is not installed; the fix names the extra that brings it."""


def install_command(extra: str) -> str:
    return f"pip install 'tunegate[{extra}]'"


def missing(module: str, what: str | None = None) -> MissingExtraError:
    """The error for a missing optional module (a dotted name is fine)."""
    top = module.split(".")[0]
    dist, extra = MODULES.get(top, (top, ""))
    needs = f"{what} needs {dist}" if what else f"{dist} is needed here"
    fix = EXTRAS[extra].fix if extra in EXTRAS else f"pip install {dist}"
    return MissingExtraError(f"{needs}, which is not installed", fix=fix)


def require(*modules: str, what: str) -> None:
    """Raise MissingExtraError for the first of `modules` that cannot be imported, without
    importing any of them."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise missing(module, what)


def from_import_error(exc: ImportError) -> MissingExtraError | None:
    """The one-line error for an ImportError of an optional package; None for anything else
    (a bug or a broken install should still show its traceback)."""
    name = exc.name or ""
    if isinstance(exc, ModuleNotFoundError) and name.split(".")[0] in MODULES:
        return missing(name)
    return None


def installed(extra: str) -> tuple[dict[str, str], list[str]]:
    """({package: version} present, [packages missing]) for one extra, read from package
    metadata only: nothing is imported."""
    present, absent = {}, []
    for dist in EXTRAS[extra].packages:
        try:
            present[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            absent.append(dist)
    return present, absent
