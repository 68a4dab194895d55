"""The task eval for real on CPU: a tiny SentencePiece Llama with a non-zero LoRA against its
base in-process (the answers differ; the base against itself is identical; a rerun reads the
cache), the same fine-tune as GGUF files in llama-cpp-python's server and as llama.cpp
deployments behind `tunegate serve`, and the CLI."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("peft")
pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")

from click.testing import CliRunner

from cli.main import main
from gateway.errors import SpecError
from gateway.facade.deploy import deploy
from gateway.facade.evaluate import task_eval
from tests.support.job_files import chats, write_jsonl
from tests.support.tiny_models import lora_adapter

pytestmark = pytest.mark.slow
ANY = r"\S+"  # a non-empty answer: the tiny model's words are noise, the plumbing is the point


@pytest.fixture(autouse=True)
def _cache(converter_cache, monkeypatch):
    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(converter_cache))


@pytest.fixture(scope="module")
def adapter(tiny_sp, tmp_path_factory):
    # scale 4: large enough that the greedy answers of the tiny model change
    return lora_adapter(
        tiny_sp, tmp_path_factory.mktemp("eval") / "lora", r=8, lora_alpha=16, scale=4.0
    )


def test_adapter_against_its_base_in_process(adapter, tiny_sp, tmp_path):
    long = "please tell me which shelf in the north wing holds the cordless drill kit with two batteries"
    leaked = {
        "messages": [
            {"role": "user", "content": long},
            {"role": "assistant", "content": "Shelf 4."},
        ]
    }
    data = write_jsonl(tmp_path / "heldout.jsonl", [*chats(9, seed=7), leaked])
    train = write_jsonl(tmp_path / "train.jsonl", [*chats(3, seed=1), leaked])  # leaked on purpose
    report = task_eval(str(adapter), data, scorer="regex", pattern=ANY, max_tokens=8, train=train)
    assert report.tuned["backend"] == report.base["backend"] == "hf"
    assert report.base["ref"] == str(tiny_sp) and report.tuned["adapter"] == str(adapter)
    assert report.stats.n == 10 and report.cached == 0
    assert any(r.base != r.tuned for r in report.rows)  # the LoRA changes the answers
    assert report.contamination and "overstate" in " ".join(report.notes)
    again = task_eval(str(adapter), data, scorer="exact", max_tokens=8)
    assert again.cached == 20  # re-scored from the cache: nothing generated
    assert [r.tuned for r in again.rows] == [r.tuned for r in report.rows]
    same = task_eval(
        str(tiny_sp), data, against=str(tiny_sp), scorer="regex", pattern=ANY, max_tokens=8
    )
    assert all(r.base == r.tuned for r in same.rows) and same.stats.delta == 0
    md = tmp_path / "x.md"
    md.write_text(report.to_markdown())
    assert "| base | tuned | delta |" in md.read_text()
    assert (
        json.loads((__import__("pathlib").Path(report.path) / "report.json").read_text())["id"]
        == report.id
    )


def test_gguf_and_deployments_through_llama_cpp(adapter, tiny_sp, tmp_path):
    from exporters.gguf import convert
    from gateway.facade.export import export

    # unverified: this strongly perturbed tiny model has near-tied logits llama.cpp breaks the
    # other way on 0.6% of tokens (the export tests verify GGUFs; this one tests the eval)
    tuned = export(adapter, "gguf", quant="f32", out=tmp_path / "tuned", verify=False).files[0]
    base = convert(tiny_sp, tmp_path / "base.gguf", outtype="f32")[0]
    data = write_jsonl(tmp_path / "heldout.jsonl", chats(6, seed=3))
    direct = task_eval(
        str(tuned), data, against=str(base), scorer="regex", pattern=ANY, max_tokens=8
    )
    assert direct.tuned["backend"] == "llama.cpp" and direct.stats.n == 6
    assert any(r.base != r.tuned for r in direct.rows)
    with pytest.raises(SpecError, match="not comparable"):
        task_eval(str(tuned), data, against=str(tiny_sp), max_tokens=8)
    _arm_tokens_are_the_engines(tuned, base, data, tmp_path)
    deploy(str(tuned), "llamacpp", name="tiny-tuned")
    deploy(str(base), "llamacpp", name="tiny-base")
    served = task_eval(
        "tiny-tuned", data, against="tiny-base", scorer="regex", pattern=ANY, max_tokens=8
    )
    assert served.tuned["backend"] == "deployment:llamacpp"
    # the same GGUF in the same engine, reached through the gateway: the same greedy answers
    assert [r.tuned for r in served.rows] == [r.tuned for r in direct.rows]
    assert [r.base for r in served.rows] == [r.base for r in direct.rows]

    # a judge served by llama-cpp-python, held to a JSON schema: every verdict parses
    from gateway.facade.evaluate import compare

    cmp = compare(
        str(tuned), str(base), data, judge=str(base), scorers=("regex",), pattern=ANY, max_tokens=8
    )
    assert cmp.judged["n"] == 6
    assert all(p["a_first"] in ("A", "B", "tie") for p in cmp.pairs)
    assert all(p["b_first"] in ("A", "B", "tie") for p in cmp.pairs)
    assert 0.0 <= cmp.judged["position_consistency"] <= 1.0
    assert cmp.scorers["regex"]["n"] == 6 and cmp.estimated_judge_usd == 0.0
    judged = task_eval(
        str(tuned), data, against=str(base), scorer="judge", judge=str(base), max_tokens=8
    )
    assert judged.cached == 12  # the answers came from the cache; only the judge ran
    assert all(r.base_score in (0.0, 1.0) and r.tuned_score in (0.0, 1.0) for r in judged.rows)
    assert any("judge:" in n for n in judged.notes)
    with pytest.raises(SpecError, match="max-judge-usd"):
        task_eval(
            str(tuned),
            data,
            against=str(base),
            scorer="judge",
            judge=str(base),
            judge_price="1000/1000",
            max_judge_usd=0.001,
            max_tokens=8,
        )


def test_cli(adapter, tmp_path):
    data = write_jsonl(tmp_path / "heldout.jsonl", chats(4, seed=5))
    res = CliRunner().invoke(
        main, ["eval", str(adapter), "--data", str(data), "--max-tokens", "4", "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["stats"]["n"] == 4 and out["scorer"] == "exact" and out["stats"]["verdict"]
    bad = CliRunner().invoke(main, ["eval", "nothing-here", "--data", str(data)])
    assert bad.exit_code != 0 and "is not a model folder" in bad.output
    assert "Traceback" not in bad.output


def _arm_tokens_are_the_engines(tuned, base, data, tmp_path):
    """A prompt arm through llama-cpp-python's server: the tokens the report gives per
    request are the engine's own `usage` for the same requests, asked again directly."""
    import httpx

    from gateway.evaluate.baselines import build_arm, parse_baseline
    from gateway.evaluate.generate import engine, export_target, held_out

    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Answer every question about the tool library in one short sentence.")
    name = f"system:{prompt}"
    report = task_eval(
        str(tuned), data, against=str(base), scorer="regex", pattern=ANY, max_tokens=8,
        baselines=[name],
    )  # fmt: skip
    assert report.cached == 12  # base and tuned from the first run; only the arm generated
    pairs, _ = held_out(data)
    asked = build_arm(
        parse_baseline(name), [p for _, (p, _) in pairs], [ex for ex, _ in pairs], None, data
    ).prompts
    target = export_target(str(base), "gguf", base)
    used = []
    with engine(target) as url:
        for messages in asked:
            body = {"model": target.model, "messages": messages, "max_tokens": 8, "temperature": 0}
            used.append(
                httpx.post(url + "/chat/completions", json=body, timeout=120).json()["usage"]
            )
    arm = report.usage[name]
    assert arm.requests == 6
    assert arm.prompt == sum(u["prompt_tokens"] for u in used) / 6
    assert arm.completion == sum(u["completion_tokens"] for u in used) / 6
    assert arm.prompt > report.usage["base"].prompt  # the system prompt is paid on every request
