"""Provider rules and calibration are catalog data: a user override changes what tunegate
checks and prints, and a typo in one is `file:line: key: what is wrong`, not a KeyError."""

from __future__ import annotations

import pytest

from gateway.catalog import _load, load_catalog
from gateway.data.validate import check_file
from gateway.errors import CatalogError
from gateway.facade.plan import plan
from gateway.spec import JobSpec
from tests.support.job_files import chats, write_jsonl


def _override(tmp_path, name: str, text: str):
    folder = tmp_path / "tg-home" / "catalog"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    _load.cache_clear()  # one process reads the catalog once; these tests change it mid-way
    return folder / name


def test_a_misspelt_price_key_names_the_file_and_line(tmp_path):
    path = _override(tmp_path, "prices.yaml", "training:\n  together:\n    minimun_usd: 5\n")
    with pytest.raises(CatalogError) as err:
        load_catalog()
    assert f"{path}:3: training.together.minimun_usd: Extra inputs are not permitted" in str(
        err.value
    )


def test_a_wrong_kind_of_value_in_calibration_is_refused_where_written(tmp_path):
    path = _override(tmp_path, "calibration.yaml", "# mine\nflops:\n  lora_per_param: four\n")
    with pytest.raises(CatalogError, match=f"{path}:3: flops.lora_per_param: Input should be"):
        load_catalog()


def test_a_value_out_of_range_is_refused_in_the_users_file(tmp_path):
    _override(tmp_path, "rules.yaml", "names:\n  together: {max_chars: 4}\n")
    with pytest.raises(CatalogError) as err:
        load_catalog()
    assert "tg-home/catalog/rules.yaml:2: names.together.max_chars" in str(err.value)


def test_data_rules_come_from_the_catalog(tmp_path):
    loaded = _loaded(tmp_path, 12)
    assert not [f for f in check_file(loaded, provider="openai") if f.severity == "error"]
    _override(tmp_path, "rules.yaml", "data:\n  openai:\n    min_examples: 20\n")
    errors = [f.message for f in check_file(loaded, provider="openai") if f.severity == "error"]
    assert errors == ["openai needs at least 20 examples (file has 12)"]


def _loaded(tmp_path, n):
    from gateway.data.formats import load

    return load(write_jsonl(tmp_path / "train.jsonl", chats(n)))


def test_lora_limits_and_printed_assumptions_follow_the_override(tmp_path):
    spec = JobSpec.from_dict(
        {
            "base_model": "meta-llama/Llama-3.1-8B-Instruct",
            "lora": {"rank": 32},
            "training": {"packing": False},
        }
    )

    def fireworks(p):
        return next(o for o in p.offers if o.provider == "fireworks")

    before = plan(spec, examples=1000, avg_tokens=400)
    assert fireworks(before).feasible
    local = next(o for o in before.offers if o.provider == "local")
    assert any("padding adds 0%-40% (likely 15%)" in a for a in local.assumptions)
    _override(tmp_path, "rules.yaml", "lora:\n  fireworks:\n    max_rank: 16\n")
    _override(
        tmp_path,
        "calibration.yaml",
        "flops:\n  padding_waste_without_packing: {low: 1.1, likely: 1.3, high: 1.5}\n",
    )
    after = plan(spec, examples=1000, avg_tokens=400)
    assert "Fireworks accepts LoRA rank 4-16; the job asks for 32" in fireworks(after).reason
    local = next(o for o in after.offers if o.provider == "local")
    assert any("padding adds 10%-50% (likely 30%)" in a for a in local.assumptions)


def test_every_rule_carries_its_source():
    rules = load_catalog().rules
    blocks = [
        *rules.data.values(),
        *rules.lora.values(),
        *rules.names.values(),
        *rules.architectures.values(),
        *(p for family in rules.hyperparameters.values() for p in family.values()),
    ]
    assert blocks and all(b.source and b.as_of for b in blocks)
    assert set(rules.data) == {"openai", "together", "fireworks", "bedrock"}
