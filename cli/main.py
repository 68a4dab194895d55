"""The `tunegate` command: a thin layer that parses, calls the SDK, and renders.

Heavy imports (rich, the SDK's planner) happen inside commands so `tunegate --help` is instant.
"""

from __future__ import annotations

import os

import click

# pydantic looks for plugins through importlib.metadata on first use (~30 ms); the CLI uses none
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
from cli.ab_cmd import ab_group
from cli.catalog_cmds import hardware_cmd, models_cmd, prices_cmd
from cli.config_cmd import config_group
from cli.data_cmd import data_group
from cli.deploy_cmds import chat_cmd, deploy_cmd, deployments_cmd, undeploy_cmd
from cli.distill_cmd import distill_cmd
from cli.doctor_cmd import doctor_cmd
from cli.eval_cmd import eval_group
from cli.export_cmd import export_cmd
from cli.jobs_cmds import (
    cancel_cmd,
    fetch_cmd,
    jobs_cmd,
    logs_cmd,
    resume_cmd,
    status_cmd,
    train_cmd,
)
from cli.migrate_cmd import migrate_group
from cli.plan_cmd import plan_cmd
from cli.serve_cmds import (
    aliases_group,
    keys_group,
    replicas_cmd,
    serve_cmd,
    ui_cmd,
    usage_cmd,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="tunegate")
def main() -> None:
    """tunegate: check data, price every backend (training and serving), route to the
    cheapest that fits, run, export and deploy.

    Start with `tunegate plan --base MODEL --examples N --avg-tokens T` or `tunegate plan job.yaml`.
    Every command takes --json for scripts. Docs: docs/getting-started.md.
    """
    from gateway.util.quiet import quiet_third_party

    quiet_third_party()  # runs before any command imports an ML library


for command in (
    plan_cmd,
    data_group,
    train_cmd,
    jobs_cmd,
    status_cmd,
    logs_cmd,
    cancel_cmd,
    resume_cmd,
    fetch_cmd,
    export_cmd,
    eval_group,
    deploy_cmd,
    deployments_cmd,
    undeploy_cmd,
    chat_cmd,
    serve_cmd,
    ui_cmd,
    usage_cmd,
    replicas_cmd,
    keys_group,
    aliases_group,
    ab_group,
    distill_cmd,
    migrate_group,
    models_cmd,
    hardware_cmd,
    prices_cmd,
    config_group,
    doctor_cmd,
):
    main.add_command(command)


if __name__ == "__main__":
    main()
