"""tunegate's SDK: specs, data checks, estimates, routing and the job journal.

    import gateway as tg
    spec = tg.JobSpec.from_yaml("job.yaml")
    plan = tg.plan(spec)
    print(plan.explain())

Names are imported on first use (PEP 562), so `import gateway.catalog` stays cheap; nothing here
imports an ML framework or a provider SDK.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

from gateway._lazy import lazy_getattr

__version__ = "0.1.0"

_EXPORTS = {
    "Catalog": "gateway.catalog",
    "load_catalog": "gateway.catalog",
    "DatasetReport": "gateway.data.report",
    "quick_report": "gateway.data.report",
    "TunegateError": "gateway.errors",
    "evaluate_job": "gateway.evaluate.job_eval",
    "task_eval": "gateway.evaluate.task",
    "export": "gateway.export",
    "Deployment": "gateway.deploy_journal",
    "deploy": "gateway.deploy",
    "deployments": "gateway.deploy_journal",
    "undeploy": "gateway.deploy",
    "chat": "gateway.deploy",
    "doctor": "gateway.doctor",
    "MissingExtraError": "gateway.extras",
    "Machine": "gateway.hardware",
    "detect": "gateway.hardware",
    "Journal": "gateway.journal",
    "Artifact": "gateway.jobs",
    "Job": "gateway.jobs",
    "jobs": "gateway.jobs",
    "launch": "gateway.launch",
    "Offer": "gateway.offer",
    "Plan": "gateway.router",
    "plan": "gateway.router",
    "JobSpec": "gateway.spec",
    "Range": "gateway.units",
}
__all__ = [
    "Artifact",
    "Catalog",
    "DatasetReport",
    "Deployment",
    "Job",
    "JobSpec",
    "Journal",
    "Machine",
    "MissingExtraError",
    "Offer",
    "Plan",
    "Range",
    "TunegateError",
    "chat",
    "deploy",
    "deployments",
    "detect",
    "doctor",
    "evaluate_job",
    "export",
    "jobs",
    "launch",
    "load_catalog",
    "plan",
    "quick_report",
    "task_eval",
    "undeploy",
]

if TYPE_CHECKING:
    from gateway.catalog import Catalog, load_catalog
    from gateway.data.report import DatasetReport, quick_report
    from gateway.deploy import chat, deploy, undeploy
    from gateway.deploy_journal import Deployment, deployments
    from gateway.doctor import doctor
    from gateway.errors import TunegateError
    from gateway.evaluate.job_eval import evaluate_job
    from gateway.evaluate.task import task_eval
    from gateway.export import export
    from gateway.extras import MissingExtraError
    from gateway.hardware import Machine, detect
    from gateway.jobs import Artifact, Job, jobs
    from gateway.journal import Journal
    from gateway.launch import launch
    from gateway.offer import Offer
    from gateway.router import Plan, plan
    from gateway.spec import JobSpec
    from gateway.units import Range

__getattr__ = lazy_getattr(__name__, _EXPORTS)


class _Package(types.ModuleType):
    """Exported names win over submodules of the same name, whatever the import order:
    `import gateway.jobs` must not turn `tg.jobs` (the function) into the module."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return  # the import system binding a submodule; the export resolves lazily
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
