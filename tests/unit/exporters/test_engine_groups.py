"""Who may join an engine group, and how a group is keyed (`exporters.deploy.groups`): the
rules, on tiny adapters built here. Serving a group for real is tests/pipeline/test_engine_group.py."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("peft")

from exporters.deploy import groups
from exporters.deploy.base import DeployOptions, DeploySource
from exporters.deploy.llamacpp import LlamaCpp
from exporters.deploy.vllm import Vllm
from gateway.facade.deploy import _adapter
from gateway.journal import Journal
from tests.support.tiny_models import lora_adapter


def test_plain_lora_joins_and_dora_or_modules_to_save_do_not(tiny, tmp_path):
    plain = lora_adapter(tiny, tmp_path / "plain")
    dora = lora_adapter(tiny, tmp_path / "dora", use_dora=True)
    saved = lora_adapter(tiny, tmp_path / "saved", modules_to_save=["lm_head"])
    for deployer in (LlamaCpp(), Vllm()):
        assert deployer.join_problems(plain) == []
        assert "DoRA" in deployer.join_problems(dora)[0]
        assert "modules_to_save" in deployer.join_problems(saved)[0]
        assert "not a LoRA adapter" in deployer.join_problems(tiny)[0]


def test_what_cannot_join_goes_alone_with_the_reason_or_is_refused(tiny, tmp_path):
    dora = lora_adapter(tiny, tmp_path / "dora", use_dora=True)
    src = DeploySource(str(dora), path=dora)
    with Journal() as journal:
        alone, wants = _adapter(src, LlamaCpp(), DeployOptions(), journal)
        assert wants == "gguf" and "DoRA" in str(alone.alone_because)
        from gateway.errors import DeployError

        with pytest.raises(DeployError, match="cannot join the base's engine: DoRA"):
            _adapter(src, LlamaCpp(), DeployOptions(engine="shared"), journal)


def test_a_group_is_keyed_by_the_base_files_not_their_path(tiny, tmp_path):
    copy = shutil.copytree(tiny, tmp_path / "copy")
    assert groups.base_hash(copy) == groups.base_hash(tiny)
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    assert groups.base_hash(copy) != groups.base_hash(tiny)


def test_references_keep_one_label_per_member(tmp_path):
    from exporters.deploy.canary import Print

    group = groups.Group("llamacpp-x", tmp_path, tmp_path, tmp_path / "m.gguf")
    group.remember("k1", "tune", [Print("a", {"x": -1.0})])
    group.remember("k2", "tune", [Print("b", {"x": -2.0})])  # the same name, another adapter
    assert group.label("k1") == "tune" and group.label("k2") == "tune@k2"
    again = groups.load(tmp_path)
    assert again is not None and set(again.prints()) == {"tune", "tune@k2"}
