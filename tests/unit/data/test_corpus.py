"""The dataset toolkit on its own corpus (tests/corpus, written by tests/corpus/make.py): one
diagnosis per broken file, the right line for every finding, LLaMA-Factory / TRL / KTO forms
read as what they are, conversions that keep every tool call, and `--provider` judging the
file as it would be uploaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main as cli
from gateway.data.checker import check
from gateway.data.convert import TARGETS
from gateway.data.formats import load
from gateway.data.prepare import load_clean, prepare
from gateway.errors import ConversionError, SpecError
from providers import HOSTED

CORPUS = Path(__file__).parents[2] / "corpus"
FILES = sorted(
    p for p in CORPUS.rglob("*") if p.is_file() and p.name not in ("make.py", "dataset_info.json")
)

# file -> (provider, [(line, severity, words in the message)]): each file's findings, exactly
EXPECTED: dict[str, tuple[str | None, list[tuple[int, str, str]]]] = {
    "empty.jsonl": (None, [(1, "error", "file is empty")]),
    "whitespace.jsonl": (None, [(1, "error", "only whitespace")]),
    "gzipped.jsonl": (None, [(1, "error", "gzip-compressed")]),
    "zipped.jsonl": (None, [(1, "error", "zip archive")]),
    "lfs-pointer.jsonl": (None, [(1, "error", "Git LFS pointer")]),
    "lfs-pointer.parquet": (None, [(1, "error", "Git LFS pointer")]),
    "corrupt.parquet": (None, [(1, "error", "cannot read Parquet")]),
    "pretty.json": (None, [(1, "error", "pretty-printed JSON: 3 object(s)")]),
    "bom.jsonl": (None, [(1, "error", "byte-order mark")]),
    "cp1252.jsonl": (None, [(1, "error", "Windows-1252")]),
    "utf16.jsonl": (None, [(1, "error", "UTF-16")]),
    "surrogate.jsonl": (None, [(2, "error", "lone UTF-16 surrogate (\\ud800)")]),
    "deep.jsonl": (None, [(2, "error", "nested too deeply")]),
    "nan.jsonl": (None, [(1, "error", "NaN is not JSON")]),
    "control-char.jsonl": (None, [(1, "error", "Invalid control character at column")]),
    "sharegpt-bad-from.jsonl": (
        None,
        [
            (1, "error", "message 1 has unknown role {'name': 'human'}"),
            (1, "error", "message 2 has unknown role ['gpt']"),
            (1, "error", "no assistant turn"),
        ],
    ),
    "content-types.jsonl": (
        None,
        [
            (1, "error", "content is int"),
            (2, "error", "content is dict"),
            (3, "error", "content part 1 (text) has no text"),
        ],
    ),
    "legacy-functions.jsonl": (None, []),
    "weights.jsonl": (
        None,
        [(1, "error", "weight True (expected the integer"), (2, "error", "weight 1.0")],
    ),
    "arguments.jsonl": (None, [(2, "error", "tool_calls[1].function.arguments is encoded twice")]),
    "parallel-tools.jsonl": (None, []),
    "good.jsonl": (None, []),
    "chat.parquet": (None, []),
    "llamafactory/sharegpt-preference.json": (None, []),
    "llamafactory/tools.json": (None, []),
    "llamafactory/kto.json": (None, []),
    "llamafactory/qa.json": (None, []),
    "llamafactory/images.json": (None, [(1, "warning", "1 image(s) in `images`")]),
    "trl-implicit-prompt.jsonl": (None, []),
    "trl-kto.jsonl": (None, []),
    "array.jsonl": ("together", [(1, "error", "one JSON array; together reads one JSON object")]),
    "sharegpt.jsonl": ("together", [(1, "error", "3 sharegpt record(s)")]),
    "messages-and-text.jsonl": (
        "together",
        [(1, "error", "both `messages` and `text`"), (1, "warning", "both `messages` and `text`")],
    ),
    "dpo-two-preferred.jsonl": ("together", [(1, "error", "exactly 1 preferred message")]),
    "prompt-completion.jsonl": ("openai", [(1, "error", "12 prompt_completion record(s)")]),
}


def test_every_corpus_file_has_its_expectation():
    assert sorted(str(p.relative_to(CORPUS)) for p in FILES) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_findings_exactly(name):
    if name in ("chat.parquet", "corrupt.parquet"):
        pytest.importorskip("pyarrow")
    provider, expected = EXPECTED[name]
    report = check(CORPUS / name, provider=provider)
    found = [(f.line, f.severity, f.message) for f in report.findings]
    for line, severity, words in expected:
        assert any(n == line and s == severity and words in m for n, s, m in found), (name, found)
    assert len(found) == len(expected), (name, found)  # one diagnosis, not one per line


def test_what_the_formats_are_read_as():
    kinds = {
        "llamafactory/sharegpt-preference.json": ("preference", 3),
        "llamafactory/tools.json": ("chat", 1),
        "llamafactory/kto.json": ("kto", 2),
        "llamafactory/qa.json": ("chat", 3),
        "trl-implicit-prompt.jsonl": ("preference", 1),
        "trl-kto.jsonl": ("kto", 2),
        "legacy-functions.jsonl": ("chat", 1),
        "pretty.json": ("chat", 3),
    }
    for name, (kind, n) in kinds.items():
        examples = load(CORPUS / name).examples
        assert [e.kind for e in examples] == [kind] * n, name
    implicit = load(CORPUS / "trl-implicit-prompt.jsonl").examples[0]
    assert implicit.messages == [{"role": "user", "content": "Sky colour?"}]
    assert [m["content"] for m in implicit.chosen + implicit.rejected] == ["Blue.", "Green."]
    assert [e.label for e in load(CORPUS / "trl-kto.jsonl").examples] == [True, False]
    assert [e.line for e in load(CORPUS / "pretty.json").examples] == [1, 13, 25]


def test_llamafactory_tool_calls_keep_every_call_and_pair_results_by_id():
    ex = load(CORPUS / "llamafactory/tools.json").examples[0]
    calls = ex.messages[1]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"city": "Oslo"},
        {"city": "Rome"},
    ]
    assert len({c["id"] for c in calls}) == 2
    assert [m.get("tool_call_id") for m in ex.messages[2:4]] == [c["id"] for c in calls]
    assert ex.tools[0]["function"]["name"] == "weather"


def test_dataset_info_maps_columns_beside_or_given(tmp_path):
    beside = check(CORPUS / "llamafactory/qa.json")
    assert beside.ok and any("dataset_info.json" in n for n in beside.notes)
    moved = tmp_path / "qa.json"
    moved.write_bytes((CORPUS / "llamafactory/qa.json").read_bytes())
    assert not check(moved).ok  # alone, its columns mean nothing
    runner = CliRunner()
    info = str(CORPUS / "llamafactory/dataset_info.json")
    out = tmp_path / "qa.openai.jsonl"
    args = ["data", "convert", str(moved), "--dataset-info", info, "--to", "openai", "-o", str(out)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    first = json.loads(out.read_text().splitlines()[0])
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
    bad = runner.invoke(cli, [*args[:5], "--dataset", "nope", *args[5:]])
    assert bad.exit_code != 0 and "has no entry 'nope'" in bad.output


def _convert(src: Path, target: str, out: Path) -> list[dict]:
    result = CliRunner().invoke(cli, ["data", "convert", str(src), "--to", target, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_tool_calls_round_trip_through_sharegpt_with_their_ids(tmp_path):
    original = [json.loads(x) for x in (CORPUS / "parallel-tools.jsonl").read_text().splitlines()]
    sharegpt = _convert(CORPUS / "parallel-tools.jsonl", "sharegpt", tmp_path / "s.jsonl")
    assert json.loads(sharegpt[0]["conversations"][1]["value"])[1]["arguments"] == {"city": "Rome"}
    assert isinstance(sharegpt[0]["tools"], str)  # LLaMA-Factory's form
    back = _convert(tmp_path / "s.jsonl", "openai", tmp_path / "back.jsonl")
    assert back == original


@pytest.mark.parametrize(
    ("name", "target", "words"),
    [
        (
            "parallel-tools.jsonl",
            "bedrock-conversation",
            "tool calls and tool results would be lost",
        ),
        ("parallel-tools.jsonl", "alpaca", "no tool calls or tool results"),
        ("parallel-tools.jsonl", "prompt_completion", "tool calls do not flatten"),
        ("trl-kto.jsonl", "together", "undesirable (label false) answers"),
        ("trl-kto.jsonl", "openai", "undesirable (label false) answers"),
        ("trl-kto.jsonl", "mlx", "undesirable (label false) answers"),
        ("llamafactory/images.json", "together", "1 image(s) in `images`"),
        ("llamafactory/images.json", "prompt_completion", "1 image(s) in `images`"),
    ],
)
def test_what_a_target_cannot_express_stops_the_conversion_with_the_line(
    tmp_path, name, target, words
):
    result = CliRunner().invoke(
        cli, ["data", "convert", str(CORPUS / name), "--to", target, "-o", str(tmp_path / "o")]
    )
    assert result.exit_code != 0 and "line 1:" in result.output and words in result.output
    assert not (tmp_path / "o").exists()


def test_kto_keeps_its_label_where_the_target_has_one(tmp_path):
    trl = _convert(CORPUS / "trl-kto.jsonl", "trl", tmp_path / "t.jsonl")
    assert [r["label"] for r in trl] == [True, False]
    assert trl[1]["completion"] == [{"role": "assistant", "content": "Go away."}]
    lf = _convert(CORPUS / "llamafactory/kto.json", "sharegpt", tmp_path / "s.jsonl")
    assert [r["label"] for r in lf] == [True, False]


def test_a_job_never_trains_kto_or_pairs_as_sft(tmp_path):
    with pytest.raises(SpecError, match="2 kto example"):
        prepare(CORPUS / "trl-kto.jsonl", "trl", tmp_path / "a.jsonl", objective="sft")
    with pytest.raises(SpecError, match="objective dpo"):
        prepare(CORPUS / "trl-implicit-prompt.jsonl", "trl", tmp_path / "b.jsonl", objective="sft")
    with pytest.raises(SpecError, match="12 chat example"):
        prepare(CORPUS / "good.jsonl", "trl", tmp_path / "c.jsonl", objective="dpo")
    assert prepare(CORPUS / "good.jsonl", "trl", tmp_path / "d.jsonl", objective="sft").exists()


def test_as_uploaded_failures_name_the_convert_that_fixes_them_and_it_does(tmp_path):
    for name, provider in [
        ("array.jsonl", "together"),
        ("sharegpt.jsonl", "together"),
        ("chat.parquet", "together"),
        ("prompt-completion.jsonl", "openai"),
        ("trl-implicit-prompt.jsonl", "together"),
        ("messages-and-text.jsonl", "together"),
    ]:
        before = check(CORPUS / name, provider=provider)
        hint = f"--to {provider} -o"
        assert any(
            hint in f.message and ("makes it valid" in f.message or "writes JSONL" in f.message)
            for f in before.errors
        ), (name, before.errors)
        out = tmp_path / f"{Path(name).stem}.{provider}.jsonl"
        _convert(CORPUS / name, provider, out)
        after = check(out, provider=provider)
        assert [f for f in after.errors if "at least" not in f.message] == [], (name, after.errors)
    kto = check(CORPUS / "trl-kto.jsonl", provider="together")
    assert any("cannot fix line 1" in f.message for f in kto.errors)


def test_openai_object_arguments_fail_as_uploaded_and_convert_encodes_them(tmp_path):
    src = tmp_path / "calls.jsonl"
    rows = [json.loads(x) for x in (CORPUS / "arguments.jsonl").read_text().splitlines()][:1] * 10
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = check(src, provider="openai")
    assert any("arguments is an object" in f.message for f in before.errors)
    out = _convert(src, "openai", tmp_path / "o.jsonl")
    assert out[0]["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Oslo"}'
    assert check(tmp_path / "o.jsonl", provider="openai").ok


def test_no_command_prints_a_traceback_on_any_corpus_file(tmp_path):
    runner = CliRunner()
    for path in FILES:
        commands = [
            ["data", "check", str(path)],
            ["data", "dedup", str(path), "-o", str(tmp_path / "d")],
        ]
        commands += [["data", "check", str(path), "--provider", p] for p in HOSTED]
        commands += [
            ["data", "convert", str(path), "--to", t, "-o", str(tmp_path / "c")] for t in TARGETS
        ]
        for args in commands:
            result = runner.invoke(cli, args)
            assert result.exit_code in (0, 1, 2), (args, result.output)
            assert result.exception is None or isinstance(result.exception, SystemExit), (
                args,
                result.exception,
            )
            assert "Traceback" not in result.output


TOGETHER_OK = [
    "good.jsonl",
    "array.jsonl",
    "sharegpt.jsonl",
    "prompt-completion.jsonl",
    "parallel-tools.jsonl",
    "legacy-functions.jsonl",
    "chat.parquet",
    "trl-implicit-prompt.jsonl",
    "llamafactory/sharegpt-preference.json",
    "llamafactory/tools.json",
    "llamafactory/qa.json",
]


def test_together_sdk_file_check_passes_what_convert_writes(tmp_path):
    files = pytest.importorskip("together.lib.utils.files")
    for name in TOGETHER_OK:
        out = tmp_path / f"{Path(name).stem}.together.jsonl"
        _convert(CORPUS / name, "together", out)
        report = files.check_file(out)
        assert report["is_check_passed"], (name, report)
        assert check(out, provider="together").ok, name


def test_where_the_together_sdk_refuses_a_file_so_does_provider_together():
    files = pytest.importorskip("together.lib.utils.files")
    for path in FILES:
        if path.suffix not in (".jsonl", ".parquet"):
            continue
        try:
            sdk = files.check_file(path)
        except RecursionError:  # the SDK's own reader gives up on deep nesting
            sdk = {"is_check_passed": False, "message": "RecursionError"}
        ours = check(path, provider="together")
        if not sdk["is_check_passed"]:
            assert not ours.ok, (path.name, sdk.get("message") or sdk.get("load_parquet"))


def test_load_clean_refuses_with_lines_and_converts_nothing(tmp_path):
    with pytest.raises(SpecError, match=r"weights\.jsonl:1: error: message 2: weight True"):
        load_clean(CORPUS / "weights.jsonl")
    with pytest.raises(ConversionError):
        from gateway.data.convert import convert

        convert(load(CORPUS / "trl-kto.jsonl").examples, "together", tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()


def test_openai_models_have_a_length_limit(tmp_path):
    long = tmp_path / "long.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": "word " * 70_000},
                {"role": "assistant", "content": "ok"},
            ]
        }
    ]
    rows += [
        {"messages": [{"role": "user", "content": "short"}, {"role": "assistant", "content": "ok"}]}
    ]
    long.write_text("".join(json.dumps(r) + "\n" for r in rows))
    errors = check(long, base="gpt-4.1").errors
    assert [f.line for f in errors] == [1]
    assert "tokens, over the 65,536-token context of gpt-4.1" in errors[0].message


def test_dedup_lists_unreadable_lines_instead_of_dropping_them(tmp_path):
    src = tmp_path / "mixed.jsonl"
    good = (CORPUS / "good.jsonl").read_text().splitlines()
    src.write_text("\n".join([good[0], "{not json", good[0], '{"foo": 1}', good[1]]) + "\n")
    out = tmp_path / "clean.jsonl"
    result = CliRunner().invoke(cli, ["data", "dedup", str(src), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    manifest = [
        json.loads(x) for x in (tmp_path / "clean.jsonl.manifest.jsonl").read_text().splitlines()
    ]
    assert [(m["line"], m["reason"].split(":")[0]) for m in manifest] == [
        (2, "unreadable"),
        (3, "exact duplicate"),
    ]
    assert [json.loads(x) for x in out.read_text().splitlines()] == [
        json.loads(good[0]),
        {"foo": 1},
        json.loads(good[1]),
    ]
    refused = CliRunner().invoke(
        cli, ["data", "dedup", str(CORPUS / "gzipped.jsonl"), "-o", str(out)]
    )
    assert refused.exit_code != 0 and "gzip-compressed" in refused.output
