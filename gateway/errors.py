"""One exception tree for everything tunegate raises on purpose.

Every error carries what went wrong, where, and how to fix it, so the CLI can print it as one
readable line and exit non-zero instead of showing a traceback.

    TunegateError
    ├── SpecError            a job file or argument is invalid
    ├── CatalogError         a catalog file is malformed, an id unknown
    │   └── UnknownModelError
    ├── HardwareError
    ├── JournalError
    ├── PlanError            no backend can run the job under the constraints
    ├── ProviderError        a provider refused or failed a request
    ├── JobError             a job cannot do what was asked
    ├── ArchiveError         a download is unsafe or corrupt
    ├── ExportError          an export cannot be made or failed verification
    │   ├── VerificationError  it was made, and failed its numeric check or task eval
    │   └── DeployError      a deployment cannot be made, removed or reached
    ├── MissingKeyError      a provider key is not set
    ├── ServeError           the serving gateway cannot start or route as asked
    ├── ConversionError      an example cannot be written in the target format
    ├── ModelNotFoundError   the base model is not on disk and cannot be fetched
    └── AdapterFormatError   an adapter uses a feature the other format cannot express
(`MissingExtraError`, for an optional package, lives with the extras table in
`gateway.catalog.extras`.)
"""

from __future__ import annotations


class TunegateError(Exception):
    """Base of every error tunegate raises deliberately."""

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None, fix: str | None = None):
        self.message = message
        self.where = where
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class SpecError(TunegateError):
    """A job file or job argument is invalid (wrong key, bad value, missing field)."""


class CatalogError(TunegateError):
    """A catalog file is malformed, or a model/hardware id is unknown."""


class UnknownModelError(CatalogError):
    """The base model is in neither the catalog nor the local Hugging Face cache."""


class HardwareError(TunegateError):
    """Hardware detection failed or a hardware id is unknown."""


class JournalError(TunegateError):
    """The job journal cannot be opened, migrated or written."""


class PlanError(TunegateError):
    """No plan could be made (e.g. no provider is allowed by the constraints)."""


class ProviderError(TunegateError):
    """A provider refused or failed a request (after retries, where retrying is safe)."""


class JobError(TunegateError):
    """A job cannot do what was asked (not finished yet, no artifact, not launchable here)."""


class ArchiveError(TunegateError):
    """A downloaded archive is unsafe (path traversal, escaping link, oversize) or corrupt."""


class ExportError(TunegateError):
    """An export cannot be made or failed its verification (the reason and the route that works)."""


class VerificationError(ExportError):
    """An export was made and failed its check (numeric agreement or the task eval); the files
    wait at `NAME.unverified`. Its own type, because a larger quant may still pass
    (`gateway.facade.deploy` climbs the quant ladder on this error and on no other)."""

    def __init__(self, message: str, failures: list[str], **kw: str | None):
        super().__init__(message, **kw)
        self.failures = failures


class DeployError(ExportError):
    """A deployment cannot be made, removed or reached (unknown target, a source the target
    does not take, a host that refused). An `ExportError`, since deploying is the last step
    of an export."""


class MissingKeyError(TunegateError):
    """A provider key is not set."""


class ConversionError(TunegateError):
    """An example cannot be written in the target format."""


class ModelNotFoundError(TunegateError):
    """The base model cannot be found locally or fetched."""


class AdapterFormatError(TunegateError):
    """An adapter uses a feature the other format cannot express."""


class ServeError(TunegateError):
    """`tunegate serve`, keys or aliases cannot do what was asked (bind, route, key)."""
