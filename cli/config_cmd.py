"""`tunegate config`: the settings that are not part of a job (Bedrock's role and bucket,
SkyPilot's bucket, interpreter and clouds), where each comes from, and setting them."""

from __future__ import annotations

import click

from cli.common import emit_json, handle_errors


@click.group("config", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def config_group(ctx: click.Context, as_json: bool) -> None:
    """Show the settings in force (the file, with environment variables on top).

    \b
    tunegate config
    tunegate config set skypilot.bucket s3://my-bucket/tunegate
    tunegate config set skypilot.clouds aws,gcp
    tunegate config unset skypilot.clouds
    """
    if ctx.invoked_subcommand is not None:
        return
    from gateway.catalog.config import ENV, config_path, load_config

    config = load_config().model_dump()
    if as_json:
        emit_json({"file": str(config_path()), **config})
        return
    import os

    click.echo(f"file: {config_path()}")
    for section, values in config.items():
        for key, value in values.items():
            var = ENV.get((section, key))
            origin = f"  (from ${var})" if var and os.environ.get(var) else ""
            click.echo(f"{section}.{key}: {value if value is not None else '-'}{origin}")


@config_group.command("set")
@click.argument("key")
@click.argument("value")
@handle_errors
def config_set(key: str, value: str) -> None:
    """Set KEY (section.name) to VALUE in the config file."""
    from gateway.catalog.config import set_value

    click.echo(f"{key} set in {set_value(key, value)}")


@config_group.command("unset")
@click.argument("key")
@handle_errors
def config_unset(key: str) -> None:
    """Remove KEY from the config file (its default applies again)."""
    from gateway.catalog.config import set_value

    click.echo(f"{key} removed from {set_value(key, None)}")
