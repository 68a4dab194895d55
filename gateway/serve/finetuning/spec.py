"""An OpenAI fine-tuning create request, mapped onto a tunegate job spec.

Everything the request may say has a place in the spec or is refused by name, so nothing a
script sends is silently dropped. `model` is an open model id (routed by the planner), `auto`
(the server's default base), or `backend:model` to pin the backend. tunegate-only settings ride
in `extra_body={"tunegate": {...}}`, so stock SDK code works unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from gateway.data.formats import load
from gateway.data.validate import check_file
from gateway.errors import TunegateError
from gateway.serve.finetuning.store import StoredFile
from gateway.spec import PROVIDER_NAMES, JobSpec

TOP_LEVEL = frozenset(
    {
        "model",
        "training_file",
        "validation_file",
        "hyperparameters",
        "method",
        "suffix",
        "seed",
        "metadata",
        "integrations",
        "tunegate",
    }
)
HYPERPARAMETERS = {"supervised": {"n_epochs", "batch_size", "learning_rate_multiplier"}}
HYPERPARAMETERS["dpo"] = HYPERPARAMETERS["supervised"] | {"beta"}
METHODS = {"supervised": "sft", "dpo": "dpo"}
EXTENSION = frozenset(
    {"backend", "deploy_to", "max_usd", "lora_rank", "lora_alpha", "max_seq_len", "local_only"}
)
MAX_SUFFIX = 64


class ApiError(Exception):
    """An OpenAI-shaped error: `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = (
            status,
            message,
            param,
            code,
            kind,
        )

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


@dataclass(frozen=True)
class Mapped:
    """A create request as tunegate runs it."""

    spec: JobSpec
    backend: str | None  # None: the planner's choice
    deploy_to: str | None  # None: the rule for the backend that runs it
    hyperparameters: dict[str, Any]
    method: dict[str, Any]


def _bad(message: str, param: str, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def _model(model: Any, default_base: str | None) -> tuple[str, str | None]:
    if not isinstance(model, str) or not model.strip():
        raise _bad("`model` must be a model id, `auto`, or `backend:model`", "model")
    if model == "auto":
        if not default_base:
            raise _bad(
                "model `auto` needs the server's default base: start it with "
                "`tunegate serve --ft-model BASE`, or name a model",
                "model",
            )
        return default_base, None
    backend, sep, rest = model.partition(":")
    if sep and backend in PROVIDER_NAMES and rest:
        return rest, backend
    return model, None


def _hyper(values: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise _bad(f"`{where}` must be an object", where)
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise _bad(
            f"`{where}.{unknown[0]}` is not supported; tunegate maps: {', '.join(sorted(allowed))}",
            f"{where}.{unknown[0]}",
            "unsupported_parameter",
        )
    return {k: v for k, v in values.items() if v != "auto"}


def _method(body: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(objective, hyperparameters, the method echoed back)."""
    method = body.get("method") or {"type": "supervised"}
    kind = method.get("type") if isinstance(method, dict) else None
    if kind == "reinforcement":
        raise _bad(
            "method.type `reinforcement` is not served by the API: tunegate's GRPO runs from a job "
            "file (`objective: grpo` with `rewards:`), see docs/objectives.md",
            "method.type",
            "unsupported_parameter",
        )
    if kind not in METHODS:
        raise _bad("method.type must be `supervised` or `dpo`", "method.type")
    extra = sorted(set(method) - {"type", kind})
    if extra:
        raise _bad(f"`method.{extra[0]}` is not supported", f"method.{extra[0]}")
    inner = method.get(kind) or {}
    hyper = _hyper(body.get("hyperparameters"), HYPERPARAMETERS[kind], "hyperparameters")
    hyper |= _hyper(
        inner.get("hyperparameters"), HYPERPARAMETERS[kind], f"method.{kind}.hyperparameters"
    )
    return METHODS[kind], hyper, {"type": kind, kind: {"hyperparameters": hyper}}


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    ok = (
        isinstance(value, dict)
        and len(value) <= 16
        and all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
            for k, v in value.items()
        )
    )
    if not ok:
        raise _bad("`metadata` is at most 16 string pairs (keys <= 64, values <= 512)", "metadata")
    return value


def check_data(file: StoredFile, objective: str, param: str) -> None:
    """tunegate's checker on the stored file, for this objective: the first errors, by line."""
    if file.status != "processed":
        raise _bad(
            f"{file.filename} ({file.id}) did not pass the checks: {file.status_details}",
            param,
            f"invalid_{param}",
        )
    findings = [
        f
        for f in check_file(load(file.path), objective=objective, file_bytes=file.bytes)
        if f.severity == "error"
    ]
    if findings:
        lines = "; ".join(f"line {f.line}: {f.message}" for f in findings[:5])
        more = f" (and {len(findings) - 5} more)" if len(findings) > 5 else ""
        raise _bad(f"{file.filename} ({file.id}): {lines}{more}", param, f"invalid_{param}")


def map_create(
    body: dict[str, Any],
    files: dict[str, StoredFile | None],
    *,
    default_base: str | None = None,
    budget_left_usd: float | None = None,
) -> Mapped:
    """The job spec for a create request, or an `ApiError` naming what cannot be mapped.
    `files` holds the stored files the request names (None where an id is unknown)."""
    unknown = sorted(set(body) - TOP_LEVEL)
    if unknown:
        raise _bad(f"`{unknown[0]}` is not supported", unknown[0], "unsupported_parameter")
    if body.get("integrations"):
        raise _bad(
            "`integrations` (Weights & Biases) is not supported: tunegate records metrics in its "
            "journal (`tunegate logs JOB`)",
            "integrations",
            "unsupported_parameter",
        )
    base, backend = _model(body.get("model"), default_base)
    objective, hyper, method = _method(body)
    ext = body.get("tunegate") or {}
    if not isinstance(ext, dict) or set(ext) - EXTENSION:
        bad = sorted(set(ext) - EXTENSION) if isinstance(ext, dict) else ["tunegate"]
        raise _bad(
            f"`tunegate.{bad[0]}` is not a tunegate setting; known: {', '.join(sorted(EXTENSION))}",
            f"tunegate.{bad[0]}",
        )
    backend = ext.get("backend") or backend
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or len(suffix) > MAX_SUFFIX):
        raise _bad(f"`suffix` is a string of at most {MAX_SUFFIX} characters", "suffix")
    _metadata(body.get("metadata"))
    paths = {}
    for param in ("training_file", "validation_file"):
        ref = body.get(param)
        if ref is None and param == "validation_file":
            continue
        file = files.get(str(ref))
        if file is None:
            raise ApiError(
                404 if ref else 400,
                f"no file '{ref}' here: upload it with files.create(purpose='fine-tune')",
                param=param,
                code="file_not_found",
            )
        check_data(file, objective, param)
        paths[param] = file.path
    max_usd = ext.get("max_usd")
    if budget_left_usd is not None:
        max_usd = min(max_usd or budget_left_usd, budget_left_usd)
    training: dict[str, Any] = {
        "epochs": hyper.get("n_epochs"),
        "batch_size": hyper.get("batch_size"),
        "learning_rate_multiplier": hyper.get("learning_rate_multiplier"),
        "dpo_beta": hyper.get("beta"),
        "max_seq_len": ext.get("max_seq_len"),
    }
    if body.get("seed") is not None:
        training["seed"] = body["seed"]
    try:
        spec = JobSpec.model_validate(
            {
                "base_model": base,
                "train": paths["training_file"],
                "validation": paths.get("validation_file"),
                "objective": objective,
                "name": suffix or "ft-api",
                "training": {k: v for k, v in training.items() if v is not None},
                "lora": {
                    k: v
                    for k, v in {
                        "rank": ext.get("lora_rank"),
                        "alpha": ext.get("lora_alpha"),
                    }.items()
                    if v is not None
                },
                "constraints": {
                    "max_usd": max_usd,
                    "local_only": bool(ext.get("local_only")),
                },
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _bad(f"{where}: {first['msg']}", _param_of(where)) from None
    except TunegateError as exc:
        raise _bad(exc.message, "model") from None
    return Mapped(spec, backend, ext.get("deploy_to"), hyper, method)


def _param_of(where: str) -> str:
    names = {
        "training.epochs": "hyperparameters.n_epochs",
        "training.batch_size": "hyperparameters.batch_size",
        "training.learning_rate_multiplier": "hyperparameters.learning_rate_multiplier",
        "training.dpo_beta": "hyperparameters.beta",
        "training.seed": "seed",
    }
    return names.get(where, where)
