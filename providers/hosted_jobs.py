"""What the hosted backends share when they run jobs: the `HostedJobs` base (credentials,
check-convert-upload), reading the job's settings back from the journal, naming the remote job."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gateway.journal import JobRecord
from gateway.spec import ResolvedSpec
from gateway.util.secrets import require


class HostedJobs:
    """The part of `providers.base.Provider` every hosted backend does alike: its credentials
    (named by variable, never read into a message) and upload = check, convert into the
    provider's format in the job directory, send each file once with `_upload_one`."""

    name: str
    label: str  # the provider as messages name it

    @property
    def serves_with(self) -> str:
        """A hosted provider's fine-tunes are served where they were trained."""
        return self.name

    key_vars: tuple[str, ...] = ()
    data_format: str = ""  # the `gateway.data.convert` target

    def client(self, *, max_retries: int = 0) -> Any:
        """The official SDK's client, with its own retries off (`gateway.util.retry` decides)."""
        raise NotImplementedError

    def _keys(self) -> list[str]:
        return [require(var, self.label) for var in self.key_vars]

    def check_ready(self) -> None:
        self._keys()

    def credential_needs(self) -> list[tuple[str, ...]]:
        """What `tunegate doctor` checks: each tuple needs one of its variables set."""
        return [(var,) for var in self.key_vars]

    def upload(self, rec: JobRecord, spec: ResolvedSpec, jobdir: Path) -> dict[str, str]:
        train, valid = prepare_data(spec, self.name, self.data_format, jobdir)
        client = self.client()
        out = {"training_file": self._upload_one(client, train)}
        if valid is not None:
            out["validation_file"] = self._upload_one(client, valid)
        return out

    def _upload_one(self, client: Any, path: Path) -> str:
        raise NotImplementedError


def prepare_data(
    spec: ResolvedSpec, provider: str, target: str, jobdir: Path
) -> tuple[Path, Path | None]:
    """The job's files checked under the provider's rules and written in its format into the
    job directory (the user's files are only read)."""
    from gateway.data.prepare import prepare

    train = prepare(
        Path(spec.train),  # type: ignore[arg-type]
        target,
        jobdir / f"train.{provider}.jsonl",
        provider=provider,
        objective=spec.objective,
    )
    valid = None
    if spec.validation is not None:
        valid = prepare(
            Path(spec.validation),
            target,
            jobdir / f"valid.{provider}.jsonl",
            provider=provider,
            objective=spec.objective,
        )
    return train, valid


def user_set(rec: JobRecord, key: str) -> bool:
    """Whether `key` (e.g. "training.batch_size") came from the user, not a preset."""
    return (rec.spec.get("_origin") or {}).get(key) in ("job", "cli")


def setting(rec: JobRecord, section: str, key: str) -> Any:
    return (rec.spec.get(section) or {}).get(key)


def name_limit(provider: str) -> int:
    """The longest remote name `provider` takes (rules.yaml: names)."""
    from gateway.catalog import load_catalog

    return load_catalog().rules.names[provider].max_chars


def suffix_for(rec: JobRecord, limit: int) -> str:
    """A remote model-name suffix that carries the idempotency key (how a job is found again)."""
    name = re.sub(r"[^a-z0-9-]+", "-", (rec.name or "").lower()).strip("-")
    key = "tg" + rec.idempotency_key.removeprefix("tgk-")[:20]
    room = limit - len(key) - 1
    return f"{name[:room]}-{key}" if name and room > 2 else key


def key_name(rec: JobRecord) -> str:
    """A remote resource id for providers that let the client choose it: `tg-<key>`, valid for
    Fireworks and Bedrock (lowercase, <= 63 chars), so a repeated create names the same job."""
    return "tg-" + rec.idempotency_key.removeprefix("tgk-").lower()


def model_id(rec: JobRecord) -> str:
    offer = rec.offer or {}
    return str(offer.get("model_id") or rec.base_model)


def files(rec: JobRecord) -> dict[str, str]:
    return dict((rec.remote or {}).get("files") or {})
