"""One finding of `tunegate doctor`, a plain record every layer may produce: the facade runs
the machine-wide checks, and each plug-in (a runner, a backend) reports its own readiness, as
SkyPilot's clouds each answer `check_credentials()`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    area: str  # python | extra | hardware | engine | server | credentials | home | rented
    name: str
    ok: bool | None  # None: not needed for most work, shown for information
    detail: str
    blocks: str = ""  # what cannot be done while this is missing
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
