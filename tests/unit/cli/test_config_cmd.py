"""`tunegate config`: settings set, validated before they are written, and shown with their
origin (an environment variable wins over the file)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli.main import main
from gateway.catalog.config import load_config


def test_set_show_unset_and_refuse(monkeypatch):
    run = CliRunner().invoke
    assert run(main, ["config", "set", "skypilot.bucket", "s3://tg-b/jobs"]).exit_code == 0
    assert run(main, ["config", "set", "skypilot.clouds", "aws, gcp"]).exit_code == 0
    assert run(main, ["config", "set", "skypilot.spot", "yes"]).exit_code == 0
    cfg = load_config().skypilot
    assert (cfg.bucket, cfg.clouds, cfg.spot) == ("s3://tg-b/jobs", ["aws", "gcp"], True)
    bad = run(main, ["config", "set", "skypilot.bucket", "gs://elsewhere"])
    assert bad.exit_code == 1 and "expected s3://bucket" in bad.output
    assert load_config().skypilot.bucket == "s3://tg-b/jobs"  # a refused value is not written
    unknown = run(main, ["config", "set", "skypilot.buckt", "x"])
    assert unknown.exit_code == 1 and "skypilot.bucket" in unknown.output  # the known keys
    monkeypatch.setenv("TUNEGATE_SKYPILOT_BUCKET", "s3://from-env")
    shown = run(main, ["config"]).output
    assert "skypilot.bucket: s3://from-env  (from $TUNEGATE_SKYPILOT_BUCKET)" in shown
    assert json.loads(run(main, ["config", "--json"]).output)["skypilot"]["clouds"] == [
        "aws",
        "gcp",
    ]
    assert run(main, ["config", "unset", "skypilot.clouds"]).exit_code == 0
    assert load_config().skypilot.clouds is None


def test_a_typo_in_the_config_lists_the_configs_own_keys(tmp_path, monkeypatch):
    """A typo in config.yaml names the keys allowed at that place of the config, not the job
    file's (they were an empty list when the job file's model was walked)."""
    from gateway.catalog.config import load_config
    from gateway.errors import SpecError

    path = tmp_path / "config.yaml"
    path.write_text("skypilot:\n  bucket: s3://b/p\n  colour: red\n")
    monkeypatch.setenv("TUNEGATE_CONFIG", str(path))
    with pytest.raises(SpecError) as err:
        load_config()
    message = str(err.value)
    assert f"{path}:3: skypilot.colour: unknown key 'colour'" in message
    assert "expected one of: " in message and "bucket" in message and "clouds" in message
