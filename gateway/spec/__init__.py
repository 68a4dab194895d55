"""The job spec: what a user asks for (`JobSpec`, from a YAML file or options), resolved once
into every explicit value with its origin (`ResolvedSpec`), plus presets, objectives and rewards.

The classes live in `gateway.spec.job`; the names here are imported on first use (PEP 562), so
`tunegate --help` and the CLI's option lists (`gateway.spec.objectives`) do not pay for pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.util.lazy import lazy_getattr

_NAMES = (
    "Method",
    "Objective",
    "Task",
    "ProviderName",
    "PROVIDER_NAMES",
    "Scheduler",
    "Optimizer",
    "LoraConfig",
    "TrainingConfig",
    "ServingConfig",
    "Constraints",
    "ResourcesConfig",
    "GgufType",
    "MlxType",
    "ExportTarget",
    "ExportConfig",
    "EvalConfig",
    "BedrockJobConfig",
    "JobSpec",
    "ResolvedTraining",
    "ResolvedSpec",
    "OPTION_KEYS",
    "option_patch",
)
__all__ = list(_NAMES)

if TYPE_CHECKING:
    from gateway.spec.job import (  # noqa: F401
        OPTION_KEYS,
        PROVIDER_NAMES,
        BedrockJobConfig,
        Constraints,
        EvalConfig,
        ExportConfig,
        ExportTarget,
        GgufType,
        JobSpec,
        LoraConfig,
        Method,
        MlxType,
        Objective,
        Optimizer,
        ProviderName,
        ResolvedSpec,
        ResolvedTraining,
        ResourcesConfig,
        Scheduler,
        ServingConfig,
        Task,
        TrainingConfig,
        option_patch,
    )

__getattr__ = lazy_getattr(__name__, dict.fromkeys(_NAMES, "gateway.spec.job"))
