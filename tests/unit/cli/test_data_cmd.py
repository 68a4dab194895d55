import hashlib
import json

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.main import main
from gateway.data.checker import check

CHAT = {
    "messages": [
        {"role": "user", "content": "Where is the drill?"},
        {"role": "assistant", "content": "Green shelf."},
    ]
}


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_check_json_keys_and_exit_codes(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text((json.dumps(CHAT) + "\n") * 3)
    result = invoke("data", "check", str(good), "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    for key in (
        "format",
        "n_examples",
        "errors",
        "warnings",
        "exact_duplicates",
        "near_duplicates",
        "contamination",
        "tokens",
        "suggested_max_seq_len",
    ):
        assert key in data
    assert data["exact_duplicates"] == [[1, 2, 3]] and data["errors"] == []
    assert set(data["tokens"]) >= {"mean", "p50", "p95", "p99", "max", "approximate"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(CHAT)
        + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "x"}]})
        + "\n"
    )
    result = invoke("data", "check", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:2: error: no assistant turn to learn from" in result.output


def test_convert_dedup_split_leave_input_untouched(tmp_path):
    src = tmp_path / "in.jsonl"
    rows = [CHAT, CHAT]
    rows += [
        {
            "messages": [
                {"role": "user", "content": f"q{i} " * 20},
                {"role": "assistant", "content": f"a{i}"},
            ]
        }
        for i in range(20)
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    out = json.loads(
        invoke(
            "data", "convert", str(src), "--to", "mlx", "-o", str(tmp_path / "mlx"), "--json"
        ).output
    )
    assert out["examples"] == len(rows) and (tmp_path / "mlx" / "train.jsonl").exists()
    ded = json.loads(
        invoke(
            "data", "dedup", str(src), "-o", str(tmp_path / "clean.jsonl"), "--no-near", "--json"
        ).output
    )
    assert ded["dropped"] == 1
    manifest = [
        json.loads(x) for x in (tmp_path / "clean.jsonl.manifest.jsonl").read_text().splitlines()
    ]
    assert manifest == [{"line": 2, "reason": "exact duplicate", "duplicate_of": 1}]
    sp = json.loads(
        invoke(
            "data",
            "split",
            str(src),
            "--val",
            "0.2",
            "--seed",
            "3",
            "-o",
            str(tmp_path / "sp"),
            "--json",
        ).output
    )
    assert sp["train"] + sp["valid"] == len(rows)
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest


def test_convert_refuses_files_with_errors(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"messages": []}\n')
    result = CliRunner().invoke(
        main, ["data", "convert", str(src), "--to", "openai", "-o", str(tmp_path / "o.jsonl")]
    )
    assert (
        result.exit_code == 1
        and "errors; fix them first" in result.output
        and "Traceback" not in result.output
    )


_json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "messages",
                    "role",
                    "content",
                    "text",
                    "prompt",
                    "chosen",
                    "rejected",
                    "conversations",
                    "from",
                    "value",
                    "tool_calls",
                    "function",
                    "tools",
                    "weight",
                    "instruction",
                    "output",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=15,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.one_of(
            _json_value.map(json.dumps), st.binary(max_size=30).map(lambda b: b.decode("latin-1"))
        ),
        min_size=1,
        max_size=6,
    )
)
def test_checker_never_crashes_and_every_finding_names_a_line(tmp_path, lines):
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n")
    report = check(path, provider="openai")
    is_array = path.read_bytes().lstrip(b"\xef\xbb\xbf").lstrip().startswith(b"[")
    bound = (
        10**6 if is_array else len(path.read_bytes().splitlines())
    )  # arrays count records, not lines
    for finding in report.findings:
        assert isinstance(finding.line, int) and 1 <= finding.line <= bound and finding.message


def test_bedrock_schema_follows_the_base_family(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(CHAT) + "\n")
    llama = json.loads(
        invoke(
            "data",
            "convert",
            str(src),
            "--to",
            "bedrock",
            "--base",
            "meta-llama/Llama-3.1-8B-Instruct",
            "-o",
            str(tmp_path / "l.jsonl"),
            "--json",
        ).output
    )
    assert llama["to"] == "bedrock" and "completion" in (tmp_path / "l.jsonl").read_text()
    other = json.loads(
        invoke(
            "data",
            "convert",
            str(src),
            "--to",
            "bedrock",
            "--base",
            "Qwen/Qwen3-8B",
            "-o",
            str(tmp_path / "q.jsonl"),
            "--json",
        ).output
    )
    assert (
        other["to"] == "bedrock-conversation"
        and "schemaVersion" in (tmp_path / "q.jsonl").read_text()
    )
