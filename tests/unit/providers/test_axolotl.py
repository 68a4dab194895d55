"""The Axolotl route's config: written from the resolved spec, passed by Axolotl's own
`validate_config` offline against the target (8 GPUs x 2 nodes), and a broken one refused with
the key and the reason, including what Axolotl itself would let through silently."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from cli.main import main
from gateway.errors import SpecError
from gateway.facade.plan import plan
from gateway.spec import JobSpec
from gateway.spec.presets import resolve
from providers.runners.axolotl import axolotl_config, check, preview


@pytest.fixture(autouse=True)
def _needs_axolotl():
    """Every test here needs axolotl (a skip on the fixture, not on the module)."""
    pytest.importorskip("axolotl.utils.config", reason="make test installs axolotl (--no-deps)")


BASE = "meta-llama/Llama-3.1-8B-Instruct"


def _spec(**extra) -> dict:
    spec = JobSpec.from_dict(
        {"base_model": BASE, "train": "t.jsonl", "resources": {"nodes": 2, "gpus": 8}, **extra}
    )
    resolved = plan(spec, examples=5000, avg_tokens=600).spec
    return resolved.model_dump(mode="json")


def test_the_config_passes_axolotls_own_validation():
    spec = _spec(method="qlora", resources={"nodes": 2, "gpus": 8, "shard": True})
    cfg = axolotl_config(spec, "/tunegate-bucket/jobs/tg-1")
    assert cfg["adapter"] == "qlora" and cfg["load_in_4bit"] is True
    assert cfg["lora_r"] == spec["lora"]["rank"] and cfg["lora_target_linear"] is True
    assert cfg["datasets"][0]["path"] == "/tunegate-bucket/jobs/tg-1/train.jsonl"
    assert cfg["fsdp_version"] == 2 and cfg["optimizer"] == "adamw_torch_8bit"
    assert cfg["micro_batch_size"] == spec["training"]["batch_size"]
    checked = check(cfg, gpus=8, nodes=2)
    assert checked["lora_r"] == cfg["lora_r"]  # Axolotl's normalised form of the same config


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"axolotl": {"lora_rr": 8}}, "unknown key lora_rr"),
        ({"axolotl": {"lora_r": "sixteen"}}, "lora_r"),
        ({"axolotl": {"deepspeed": "zero3.json"}, "resources": {"nodes": 2, "shard": True}},
         "exclusive"),
        ({"axolotl": {"context_parallel_size": 2}}, "flash"),
        ({"objective": "dpo"}, "trains sft only"),
    ],
)  # fmt: skip
def test_a_broken_config_is_refused_with_the_key_and_why(extra, says):
    spec = _spec(**extra)
    with pytest.raises(SpecError) as err:
        check(axolotl_config(spec, "/j"), gpus=8, nodes=2)
    assert says in str(err.value)


def test_plan_shows_the_config_and_its_refusal(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"base_model": BASE, "resources": {"nodes": 2, "gpus": 8}}))
    args = ["plan", str(job), "--examples", "5000", "--avg-tokens", "600"]
    data = json.loads(CliRunner().invoke(main, [*args, "--json"]).stdout)
    assert data["axolotl"]["problem"] is None and data["axolotl"]["config"]["base_model"] == BASE
    shown = CliRunner().invoke(main, [*args, "--show-spec"]).output
    assert "Axolotl config" in shown and "lora_target_linear: true" in shown
    spec, _ = resolve(JobSpec.from_dict({"base_model": BASE}), examples=100, avg_tokens=300)
    config, problem = preview(spec.model_dump(mode="json"))
    assert problem is None and "fsdp_version" not in config  # one GPU: nothing to shard
