"""The regression layer for real: lm-eval 0.4.13 offline on local JSONL tasks (multiple choice
and a generative twin) against a tiny SentencePiece Llama with a non-zero LoRA and its base,
paired per example; the base against itself changes nothing; a missing suite dataset offline
is a clear error that names `tunegate eval prefetch`, not a hang."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("lm_eval")
pytest.importorskip("peft")

from gateway.errors import TunegateError
from gateway.facade.evaluate import regress
from tests.support.tiny_models import lora_adapter

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


def _tasks(folder):
    rows = [
        {
            "question": f"What is {i} plus {i}?",
            "choices": [str(2 * i), str(2 * i + 1), "blue", "x"],
            "answer": 0,
            "completion": str(2 * i),
        }
        for i in range(20)
    ]
    data = folder / "tg.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = (
        f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
    )
    (folder / "tg_mc.yaml").write_text(
        "task: tg_mc\n" + common + "output_type: multiple_choice\n"
        'doc_to_text: "Question: {{question}}\\nAnswer:"\ndoc_to_choice: "{{choices}}"\n'
        "doc_to_target: answer\nmetric_list:\n  - metric: acc\n    aggregation: mean\n"
        "    higher_is_better: true\nmetadata:\n  version: 1.0\n"
    )
    (folder / "tg_gen.yaml").write_text(
        "task: tg_gen\n" + common + "output_type: generate_until\n"
        'doc_to_text: "Question: {{question}}\\nAnswer:"\ndoc_to_target: "{{completion}}"\n'
        'generation_kwargs:\n  until: ["\\n\\n"]\n  max_gen_toks: 8\n  do_sample: false\n'
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n"
        "metadata:\n  version: 1.0\n"
    )
    return folder


def test_regression_on_local_tasks(tiny_sp, tmp_path):
    adapter = lora_adapter(tiny_sp, tmp_path / "lora", r=8, lora_alpha=16, scale=4.0)
    suite = _tasks(tmp_path)
    report = regress(str(adapter), suite=str(suite))
    assert set(report.tasks) == {"tg_mc", "tg_gen"}
    mc, gen = report.tasks["tg_mc"], report.tasks["tg_gen"]
    assert mc["metric"] == "acc" and gen["metric"] == "exact_match"
    assert mc["n"] == gen["n"] == 20
    assert mc["changed"] > 0  # the LoRA moves the choices' log-likelihoods
    assert all(0 <= t[k] <= 100 for t in report.tasks.values() for k in ("base", "tuned"))
    assert report.base["ref"] == str(tiny_sp)
    same = regress(str(tiny_sp), against=str(tiny_sp), suite=str(suite / "tg_mc.yaml"))
    assert same.tasks["tg_mc"]["changed"] == 0 and same.tasks["tg_mc"]["delta"] == 0
    assert "| tg_mc | acc | 20 |" in report.to_markdown()


def test_a_suite_missing_offline_says_how_to_fetch_it(tiny_sp):
    with pytest.raises(TunegateError) as err:
        regress(str(tiny_sp), against=str(tiny_sp), suite="quick", limit=2)
    assert "tunegate eval prefetch" in str(err.value)


def test_gguf_by_log_probs_and_deployments_by_letters(
    tiny_sp, tmp_path, monkeypatch, converter_cache
):
    """A GGUF is scored through llama-cpp-python's server with prompt log-probs; the same GGUFs
    deployed are reached through their chat API, where multiple choice is asked by letter."""
    pytest.importorskip("llama_cpp.server")
    from exporters.gguf import convert
    from gateway.facade.deploy import deploy
    from gateway.facade.export import export

    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(converter_cache))

    adapter = lora_adapter(tiny_sp, tmp_path / "lora", r=8, lora_alpha=16, scale=4.0)
    tuned = export(adapter, "gguf", quant="f32", out=tmp_path / "tuned", verify=False).files[0]
    base = convert(tiny_sp, tmp_path / "base.gguf", outtype="f32")[0]
    suite = _tasks(tmp_path)
    by_logprobs = regress(str(tuned), against=str(base), suite=str(suite / "tg_mc.yaml"), limit=6)
    assert by_logprobs.settings["backend"].startswith("lm-eval gguf")
    assert by_logprobs.settings["multiple_choice"] == "log-likelihood"
    assert by_logprobs.tasks["tg_mc"]["n"] == 6 and by_logprobs.tasks["tg_mc"]["changed"] > 0
    with pytest.raises(Exception, match="not comparable"):
        regress(str(tuned), against=str(tiny_sp), suite=str(suite), limit=2)

    deploy(str(tuned), "llamacpp", name="tiny-tuned")
    deploy(str(base), "llamacpp", name="tiny-base")
    chat = regress("tiny-tuned", against="tiny-base", suite=str(suite), limit=4)
    assert chat.settings["multiple_choice"] == "lettered, generative"
    assert chat.settings["apply_chat_template"] is True
    assert set(chat.tasks) == {"tg_mc", "tg_gen"} and chat.tasks["tg_mc"]["n"] == 4
    assert any("asked as lettered questions" in n for n in chat.notes)


def test_mlx_through_mlx_lm(tiny_sp, tmp_path):
    """An MLX export regresses in-process through mlx-lm's MLXLM (the canary included); the
    model against itself moves nothing."""
    pytest.importorskip("mlx_lm")
    from gateway.facade.export import export

    adapter = lora_adapter(tiny_sp, tmp_path / "lora", r=8, lora_alpha=16, scale=4.0)
    mlx = export(adapter, "mlx", quant="float32", out=tmp_path / "mlx", group_size=64).files[0]
    report = regress(str(mlx), against=str(mlx), suite=str(_tasks(tmp_path)), limit=4)
    assert report.settings["backend"] == "mlx-lm MLXLM"
    assert {t: (s["n"], s["changed"]) for t, s in report.tasks.items()} == {
        "tg_mc": (4, 0),
        "tg_gen": (4, 0),
    }
