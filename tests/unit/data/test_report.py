import json

import pytest

from gateway.data.report import quick_report
from gateway.errors import SpecError


def test_counts_examples_and_tokens_in_jsonl(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": "a" * 400},
                {"role": "assistant", "content": "b" * 400},
            ]
        }
    ] * 9
    rows.append(
        {
            "messages": [
                {"role": "user", "content": "a" * 4000},
                {"role": "assistant", "content": "b"},
            ]
        }
    )
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    report = quick_report(path)
    assert report.examples == 10
    assert report.approximate
    assert report.lengths[0] == 208  # 800 chars / 4 + 2 messages x 4 template tokens
    assert report.max_tokens == pytest.approx(1008, abs=1)
    assert report.p95_tokens == report.max_tokens


def test_json_array_and_dpo_pairs(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([{"prompt": "p" * 40, "chosen": "c" * 80, "rejected": "r" * 40}]))
    report = quick_report(path)
    assert report.examples == 1
    # prompt processed with both answers; 4 template tokens per message
    assert report.avg_tokens == 2 * (10 + 4) + (20 + 4) + (10 + 4)


def test_invalid_line_is_reported_with_its_number(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"text": "broken"\n')
    with pytest.raises(SpecError) as err:
        quick_report(path)
    assert f"{path}:2: invalid JSON" in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SpecError, match="training file not found"):
        quick_report(tmp_path / "nope.jsonl")
