import pytest

from gateway.errors import SpecError
from gateway.spec import JobSpec
from gateway.spec.presets import resolve


def _write(tmp_path, text):
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def test_yaml_error_names_file_line_key_and_allowed_values(tmp_path):
    path = _write(tmp_path, "base_model: Qwen/Qwen3-8B\ntask: style\nmethod: qlra\n")
    with pytest.raises(SpecError) as err:
        JobSpec.from_yaml(path)
    text = str(err.value)
    assert f"{path}:3: method:" in text
    assert "'qlra' is not allowed" in text and "'lora', 'qlora', 'dora' or 'full'" in text


def test_unknown_nested_key_lists_the_known_keys(tmp_path):
    path = _write(tmp_path, "base_model: x\nlora:\n  rank: 8\n  rnk: 3\n")
    with pytest.raises(SpecError) as err:
        JobSpec.from_yaml(path)
    text = str(err.value)
    assert f"{path}:4: lora.rnk: unknown key 'rnk'" in text
    assert "rank, alpha, dropout" in text


def test_bad_value_and_missing_key(tmp_path):
    with pytest.raises(SpecError) as err:
        JobSpec.from_yaml(_write(tmp_path, "training:\n  epochs: -1\n"))
    text = str(err.value)
    assert ":2: training.epochs:" in text and "greater than 0" in text
    assert "base_model: required key is missing" in text


def test_broken_yaml_reports_the_line(tmp_path):
    with pytest.raises(SpecError) as err:
        JobSpec.from_yaml(_write(tmp_path, "base_model: x\nlora: [\n  rank: 3\n"))
    assert "not valid YAML" in str(err.value) and f"{tmp_path / 'job.yaml'}:" in str(err.value)


def test_serving_volume_and_relative_paths(tmp_path):
    path = _write(
        tmp_path, "base_model: x\ntrain: data/train.jsonl\nserving:\n  tokens_per_day: 2M/day\n"
    )
    spec = JobSpec.from_yaml(path)
    assert spec.serving.tokens_per_day == 2_000_000
    assert spec.serving.horizon_days == 30
    assert spec.train == tmp_path / "data" / "train.jsonl"


def test_providers_allow_list_is_checked(tmp_path):
    with pytest.raises(SpecError) as err:
        JobSpec.from_yaml(
            _write(tmp_path, "base_model: x\nconstraints:\n  providers: [together, azure]\n")
        )
    assert "constraints.providers.1" in str(err.value) and "'azure' is not allowed" in str(
        err.value
    )


@pytest.mark.parametrize(("task", "rank"), [("style", 16), ("sft", 32), ("code", 64)])
def test_presets_fill_rank_alpha_and_record_origin(task, rank):
    spec, origin = resolve(JobSpec(base_model="x", task=task), examples=500, p95_tokens=700)
    assert spec.lora.rank == rank and spec.lora.alpha == rank
    assert origin["lora.rank"] == f"preset:{task}"
    assert spec.training.learning_rate == 2e-4
    assert spec.training.epochs == 3  # small set
    assert spec.training.max_seq_len == 768  # p95 700 rounded up to a multiple of 128
    assert spec.training.optimizer == "adamw_8bit" and spec.training.scheduler == "cosine"
    assert spec.lora.dropout == 0.05 and spec.lora.target_modules == "all-linear"
    assert 0.03 <= spec.training.warmup_ratio <= 0.10


def test_user_values_win_over_presets():
    spec, origin = resolve(
        JobSpec(base_model="x", lora={"rank": 8}, training={"epochs": 5}), examples=50_000
    )
    assert spec.lora.rank == 8 and origin["lora.rank"] == "job"
    assert spec.training.epochs == 5


def test_full_and_dpo_learning_rates_and_epoch_rule():
    full, _ = resolve(JobSpec(base_model="x", method="full"), examples=20_000)
    assert (
        full.training.learning_rate == 2e-5 and full.training.epochs == 1 and full.lora.rank is None
    )
    dpo, _ = resolve(JobSpec(base_model="x", objective="dpo"), examples=5_000)
    assert (
        dpo.training.learning_rate == 5e-6
        and dpo.training.dpo_beta == 0.1
        and dpo.training.epochs == 2
    )


def test_overrides_merge_section_by_section_and_validate():
    spec = JobSpec(base_model="x", lora={"rank": 8, "alpha": 16}, training={"epochs": 2})
    merged = spec.with_overrides({"lora": {"rank": 32}, "method": "dora"})
    assert merged.lora.rank == 32 and merged.lora.alpha == 16 and merged.training.epochs == 2
    assert merged.method == "dora" and spec.method == "lora"
    with pytest.raises(SpecError, match="invalid options: method: 'qlra' is not allowed"):
        spec.with_overrides({"method": "qlra"})


def test_from_options_builds_what_the_cli_builds(tmp_path):
    """The SDK owns flags -> spec; the CLI only passes its options through."""
    job = tmp_path / "job.yaml"
    job.write_text("base_model: x\ntraining: {epochs: 3}\n")
    spec = JobSpec.from_options(job, epochs=2, rank=8, serve="2M/day", providers="together, openai")
    assert spec.training.epochs == 2 and spec.lora.rank == 8
    assert spec.serving.tokens_per_day == 2_000_000
    assert spec.constraints.providers == ["together", "openai"]
    assert JobSpec.from_options(base="x", examples=5).base_model == "x"  # plan-only names ignored
    with pytest.raises(SpecError, match="give a job file or --base"):
        JobSpec.from_options(epochs=2)
    with pytest.raises(SpecError, match=r"constraints\.providers"):
        JobSpec.from_options(base="x", providers="nope")
