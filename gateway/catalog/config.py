"""User settings that are not part of a job: where Bedrock may write and which role it assumes,
and where rented jobs keep their files and which clouds they may use (SkyPilot).

Read from `$TUNEGATE_HOME/config.yaml` (or `TUNEGATE_CONFIG`), each value overridable by an
environment variable, so CI can set them without a file. Secrets never live here: credentials
come from each provider's usual chain.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

ROLE_ARN = re.compile(r"^arn:aws(-[a-z]+)*:iam::\d{12}:role/.+$")
ENV = {  # (section, key) -> environment variable that overrides it
    ("bedrock", "role_arn"): "TUNEGATE_BEDROCK_ROLE_ARN",
    ("bedrock", "s3_uri"): "TUNEGATE_BEDROCK_S3_URI",
    ("bedrock", "region"): "TUNEGATE_BEDROCK_REGION",
    ("skypilot", "bucket"): "TUNEGATE_SKYPILOT_BUCKET",
    ("skypilot", "python"): "TUNEGATE_SKYPILOT_PYTHON",
    ("serve", "store"): "TUNEGATE_STORE",
    ("serve", "usage_retention_days"): "TUNEGATE_USAGE_RETENTION_DAYS",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BedrockSettings(_Section):
    role_arn: str | None = None  # the IAM role Bedrock assumes to read and write S3
    s3_uri: str | None = None  # s3://bucket/prefix for training data and outputs
    region: str | None = None

    @field_validator("role_arn")
    @classmethod
    def _arn(cls, v: str | None) -> str | None:
        if v is not None and not ROLE_ARN.match(v):
            raise ValueError("expected an IAM role ARN like arn:aws:iam::123456789012:role/name")
        return v

    @field_validator("s3_uri")
    @classmethod
    def _s3(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$", v):
            raise ValueError("expected s3://bucket or s3://bucket/prefix")
        return v


class SkyPilotSettings(_Section):
    """Rented GPUs through SkyPilot (docs/scale-out.md)."""

    bucket: str | None = None  # s3://bucket/prefix: each job's folder, mounted on the machine
    python: str | None = None  # the interpreter SkyPilot is installed in (default: `sky`'s)
    clouds: list[str] | None = None  # the clouds jobs may rent from (default: every enabled one)
    spot: bool = False  # rent spot instances unless a job says otherwise

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$", v):
            raise ValueError("expected s3://bucket or s3://bucket/prefix (S3 or S3-compatible)")
        return v.rstrip("/") if v else v


class ServeSettings(_Section):
    """The gateway's store (docs/serve.md#replicas)."""

    # postgresql://user@host/db shared by every replica, or a journal file (default: the
    # journal under TUNEGATE_HOME)
    store: str | None = None
    usage_retention_days: float = 90.0  # request rows older than this become daily totals

    @field_validator("usage_retention_days")
    @classmethod
    def _retention(cls, v: float) -> float:
        if v < 1:
            raise ValueError("keep at least one day of request rows")
        return v


class Config(_Section):
    bedrock: BedrockSettings = BedrockSettings()
    skypilot: SkyPilotSettings = SkyPilotSettings()
    serve: ServeSettings = ServeSettings()


def config_path() -> Path:
    from gateway.catalog import tunegate_home

    env = os.environ.get("TUNEGATE_CONFIG")
    return Path(env).expanduser() if env else tunegate_home() / "config.yaml"


def load_config() -> Config:
    """The config file (if any) with environment overrides; errors name the file and line."""
    from gateway.util.yaml_lines import read_yaml, spec_error

    path = config_path()
    text, data = "", {}
    if path.exists() and path.read_text(encoding="utf-8").strip():
        text, data = read_yaml(path, "the tunegate config", "bedrock: ..., skypilot: ...")
    for (section, key), var in ENV.items():
        if os.environ.get(var):
            data.setdefault(section, {})
            data[section][key] = os.environ[var]
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise spec_error(exc, path, text, Config) from None


def set_value(key: str, value: str | None) -> Path:
    """Set (or with None, remove) `section.key` in the config file, validated before it is
    written; the file is replaced whole, atomically. Lists are comma-separated."""
    import yaml

    from gateway.errors import SpecError
    from gateway.util.yaml_lines import read_yaml

    section, _, name = key.partition(".")
    fields = Config.model_fields
    if section not in fields or name not in fields[section].annotation.model_fields:  # type: ignore[union-attr]
        known = [f"{s}.{k}" for s, f in fields.items() for k in f.annotation.model_fields]  # type: ignore[union-attr]
        raise SpecError(f"unknown setting {key!r}", fix="one of: " + ", ".join(known))
    path = config_path()
    data: dict = {}
    if path.exists() and path.read_text(encoding="utf-8").strip():
        data = read_yaml(path, "the tunegate config", "bedrock: ..., skypilot: ...")[1]
    target = data.setdefault(section, {})
    annotation = str(fields[section].annotation.model_fields[name].annotation)  # type: ignore[union-attr]
    parsed: object = value
    if value is not None and "list" in annotation:
        parsed = [v.strip() for v in value.split(",") if v.strip()]
    elif value is not None and "bool" in annotation:
        parsed = value.lower() in ("1", "true", "yes", "on")
    if value is None:
        target.pop(name, None)
    else:
        target[name] = parsed
    try:
        Config.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{key}: {exc.errors()[0]['msg']}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.replace(path)
    return path
