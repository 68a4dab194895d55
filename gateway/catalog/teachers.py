"""Hosted teachers and the terms on their outputs (teachers.yaml), for `tunegate distill`.

Whether a teacher's answers may train another model is data, not code: a provider's own terms
(closed models) or the open-weight model's licence, each with its source, date and confidence.
A teacher nobody has written down is `unknown`, which is said, recorded with the dataset, and
not refused; a `forbidden` one is refused unless the user overrides it on purpose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.catalog import tunegate_home
from gateway.catalog.tables import Confidence
from gateway.errors import CatalogError

_HERE = Path(__file__).parent
Verdict = Literal["allowed", "conditional", "forbidden"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TermsEntry(_Strict):
    distill: Verdict
    says: str
    source: str
    as_of: str
    confidence: Confidence | None = None
    licence: str | None = None
    match: str | None = None  # licences only: a regex over the model's name


class TokenPrice(_Strict):
    input: float
    output: float
    confidence: Confidence | None = None


class Provider(_Strict):
    base_url: str
    base_url_env: str | None = None
    key_env: str
    terms: TermsEntry | None = None  # the provider's own (closed models); else the licence
    models: dict[str, TokenPrice] = {}
    source: str | None = None
    prices_as_of: str | None = None


class TeachersFile(_Strict):
    as_of: str
    providers: dict[str, Provider]
    licences: list[TermsEntry]


@dataclass(frozen=True)
class Terms:
    """What a teacher's terms say about training on its outputs."""

    distill: str  # allowed | conditional | forbidden | unknown
    says: str
    source: str | None = None
    as_of: str | None = None
    confidence: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return dict(self.__dict__)


UNKNOWN = Terms(
    "unknown",
    "no terms on record for this teacher: check its licence before you ship a model trained on it",
)


@lru_cache(maxsize=4)
def _load(home: str) -> TeachersFile:
    raw = yaml.safe_load((_HERE / "teachers.yaml").read_text())
    user = Path(home) / "catalog" / "teachers.yaml"
    if user.is_file():
        mine = yaml.safe_load(user.read_text()) or {}
        for name, entry in (mine.get("providers") or {}).items():
            raw["providers"][name] = {**raw["providers"].get(name, {}), **entry}
        raw["licences"] = list(mine.get("licences") or []) + raw["licences"]  # theirs first
    try:
        return TeachersFile.model_validate(raw)
    except ValidationError as exc:
        where = user if user.is_file() else _HERE / "teachers.yaml"
        raise CatalogError(f"{where}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None


def teachers() -> TeachersFile:
    return _load(str(tunegate_home()))


def provider(name: str) -> Provider | None:
    return teachers().providers.get(name)


def terms_for(model: str, provider_name: str | None = None) -> Terms:
    """The terms on `model`'s outputs: its provider's own when it has them (closed models),
    else the first licence whose pattern matches the model's name, else unknown."""
    table = teachers()
    own = table.providers[provider_name].terms if provider_name in table.providers else None
    entry = own or next(
        (e for e in table.licences if e.match and re.search(e.match, model, re.IGNORECASE)),
        None,
    )
    if entry is None:
        return UNKNOWN
    says = f"{entry.licence}: {entry.says}" if entry.licence else entry.says
    return Terms(entry.distill, says, entry.source, entry.as_of, entry.confidence)
