"""Should you fine-tune at all? For real on CPU: SmolLM2-135M-Instruct with a LoRA trained on
the brand-voice data's planted sign-off, against the base with 5 training examples in its
prompt (it reaches the style: the fine-tune does not win) and with a system prompt that does
not ask for it (the fine-tune wins). Each arm's prompt tokens are what the model's own chat
template gives; the arms are priced at a stated volume; a rerun reads every answer back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("peft")

from click.testing import CliRunner

from cli.main import main
from gateway.evaluate.baselines import build_arm, parse_baseline
from gateway.evaluate.generate import held_out
from tests.support.tiny_models import style_adapter

pytestmark = pytest.mark.slow
VOICE = Path(__file__).resolve().parents[2] / "examples" / "brand-voice"
SIGN_OFF = r"Borrow boldly\. - L&L"


@pytest.fixture(scope="module")
def tuned(smollm2_hf, tmp_path_factory):
    rows = [json.loads(line) for line in (VOICE / "train.jsonl").read_text().splitlines()][:24]
    return style_adapter(smollm2_hf, rows, tmp_path_factory.mktemp("voice") / "adapter", epochs=4)


def test_the_fine_tune_against_the_prompt(tuned, smollm2_hf, tmp_path):
    data = tmp_path / "heldout.jsonl"
    data.write_text("".join((VOICE / "valid.jsonl").read_text().splitlines(True)[:10]))
    plain = tmp_path / "plain.txt"
    plain.write_text("Answer briefly and politely.")
    args = [
        "eval", str(tuned), "--data", str(data), "--scorer", "regex", "--pattern", SIGN_OFF,
        "--max-tokens", "80", "--train", str(VOICE / "train.jsonl"),
        "--baseline", "few-shot:5", "--baseline", f"system:{plain}",
        "--serve", "200k/day", "--base", "HuggingFaceTB/SmolLM2-135M-Instruct", "--json",
    ]  # fmt: skip
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["stats"]["tuned"] >= 90.0  # the fine-tune signs off
    shots, system = report["arms"]
    assert shots["name"] == "few-shot:5" and shots["base"] >= 80.0
    assert shots["verdict"] != "improved" and shots["says"] != "fine-tune wins"
    assert system["base"] <= 10.0 and system["verdict"] == "improved"

    # the tokens each arm asked with are what the model's chat template makes of its prompts
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_hf)
    pairs, _ = held_out(data)
    prompts = [p for _, (p, _) in pairs]

    def mean_prompt(asked: list) -> float:
        n = [
            len(
                tok.apply_chat_template(m, add_generation_prompt=True, return_dict=True)[
                    "input_ids"
                ]
            )
            for m in asked
        ]
        return sum(n) / len(n)

    usage = report["usage"]
    assert usage["tuned"]["prompt"] == usage["base"]["prompt"] == mean_prompt(prompts)
    evals = [ex for ex, _ in pairs]
    for name in ("few-shot:5", f"system:{plain}"):
        arm = build_arm(parse_baseline(name), prompts, evals, VOICE / "train.jsonl", data)
        assert usage[name]["prompt"] == mean_prompt(arm.prompts)
    assert 0 < usage["tuned"]["completion"] <= 80
    assert usage["few-shot:5"]["prompt"] > usage["tuned"]["prompt"] + 200

    cost = report["cost"]
    assert cost["requests_per_day"] == pytest.approx(
        200_000 / (usage["tuned"]["prompt"] + usage["tuned"]["completion"])
    )
    assert set(cost["arms"]) == {"tuned", "base", "few-shot:5", f"system:{plain}"}
    assert any("fewer prompt tokens a request" in s for s in cost["sentences"])
    md = (Path(report["path"]) / "report.md").read_text()
    assert "## Against the prompt" in md and "base + 5-shot" in md

    again = json.loads(CliRunner().invoke(main, args).stdout)
    assert again["cached"] == 40  # four arms of ten, nothing generated
    assert again["usage"] == usage and again["arms"] == report["arms"]
