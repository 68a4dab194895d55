"""tunegate's SDK: specs, data checks, estimates, routing and the job journal.

    import gateway as tg
    spec = tg.JobSpec.from_yaml("job.yaml")
    plan = tg.plan(spec)
    print(plan.explain())

Names are imported on first use (PEP 562), so `import gateway.catalog` stays cheap; nothing here
imports an ML framework or a provider SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.util.lazy import lazy_getattr

__version__ = "0.1.0"

_EXPORTS = {
    "Catalog": "gateway.catalog",
    "load_catalog": "gateway.catalog",
    "DatasetReport": "gateway.data.report",
    "quick_report": "gateway.data.report",
    "TunegateError": "gateway.errors",
    "evaluate_job": "gateway.facade.jobs",
    "task_eval": "gateway.facade.evaluate",
    "export": "gateway.facade.export",
    "Deployment": "gateway.journal.deployments",
    "deploy": "gateway.facade.deploy",
    "deployments": "gateway.journal.deployments",
    "undeploy": "gateway.facade.deploy",
    "chat": "gateway.facade.deploy",
    "doctor": "gateway.facade.doctor",
    "MissingExtraError": "gateway.catalog.extras",
    "Machine": "gateway.catalog.hardware",
    "detect": "gateway.catalog.hardware",
    "Journal": "gateway.journal",
    "Artifact": "gateway.facade.jobs",
    "Job": "gateway.facade.jobs",
    "jobs": "gateway.facade.jobs",
    "launch": "gateway.facade.launch",
    "Offer": "gateway.cost.offer",
    "Plan": "gateway.facade.plan",
    "plan": "gateway.facade.plan",
    "JobSpec": "gateway.spec",
    "Range": "gateway.util.units",
    "distill": "gateway.facade.distill",
    "DistillOptions": "gateway.facade.distill",
}
__all__ = [
    "Artifact",
    "Catalog",
    "DatasetReport",
    "Deployment",
    "DistillOptions",
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
    "distill",
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
    from gateway.catalog.extras import MissingExtraError
    from gateway.catalog.hardware import Machine, detect
    from gateway.cost.offer import Offer
    from gateway.data.report import DatasetReport, quick_report
    from gateway.errors import TunegateError
    from gateway.facade.deploy import chat, deploy, undeploy
    from gateway.facade.distill import DistillOptions, distill
    from gateway.facade.doctor import doctor
    from gateway.facade.evaluate import task_eval
    from gateway.facade.export import export
    from gateway.facade.jobs import Artifact, Job, evaluate_job, jobs
    from gateway.facade.launch import launch
    from gateway.facade.plan import Plan, plan
    from gateway.journal import Journal
    from gateway.journal.deployments import Deployment, deployments
    from gateway.spec import JobSpec
    from gateway.util.units import Range

__getattr__ = lazy_getattr(__name__, _EXPORTS)
