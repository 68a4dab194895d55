import hashlib
import json

import pytest

from gateway.data.checker import check
from gateway.data.convert import ConversionError, convert
from gateway.data.formats import detect_format, load
from gateway.data.hygiene import contamination, exact_duplicates, near_duplicates
from gateway.data.split import split

SYSTEM = {"role": "system", "content": "Be brief."}
CHAT = {
    "messages": [
        SYSTEM,
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello."},
    ]
}
SAMPLES = {
    "messages": CHAT,
    "sharegpt": {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello."},
        ]
    },
    "alpaca": {"instruction": "Add", "input": "2 and 3", "output": "5", "system": "Math."},
    "prompt_completion": {"prompt": "The sky is", "completion": " blue."},
    "text": {"text": "Plain pretraining text."},
    "preference": {"prompt": "Pick", "chosen": "A good answer.", "rejected": "A bad one."},
}


def write(tmp_path, rows, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def canon(ex):
    return (ex.kind, ex.messages, ex.chosen, ex.rejected, ex.text, ex.tools)


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_detection_and_round_trip(tmp_path, fmt):
    assert detect_format(SAMPLES[fmt]) == fmt
    src = write(tmp_path, [SAMPLES[fmt]] * 2)
    loaded = load(src)
    assert loaded.format == fmt and len(loaded.examples) == 2
    out = tmp_path / "again.jsonl"
    convert(loaded.examples, fmt, out)
    again = load(out)
    assert again.format == fmt
    assert [canon(e) for e in again.examples] == [canon(e) for e in loaded.examples]


def test_openai_dpo_and_json_array_and_parquet(tmp_path):
    dpo = {
        "input": {"messages": [{"role": "user", "content": "Q"}]},
        "preferred_output": [{"role": "assistant", "content": "good"}],
        "non_preferred_output": [{"role": "assistant", "content": "bad"}],
    }
    arr = tmp_path / "a.json"
    arr.write_text(json.dumps([dpo, dpo]))
    loaded = load(arr)
    assert loaded.format == "openai_preference" and [e.line for e in loaded.examples] == [1, 2]
    convert(loaded.examples, "openai", tmp_path / "o.jsonl")
    assert json.loads((tmp_path / "o.jsonl").read_text().splitlines()[0]) == dpo
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"text": "one"}, {"text": "two"}]), tmp_path / "t.parquet")
    assert [e.text for e in load(tmp_path / "t.parquet").examples] == ["one", "two"]


def test_converters_for_backends(tmp_path):
    examples = load(write(tmp_path, [CHAT, CHAT])).examples
    convert(examples, "mlx", tmp_path / "mlx", valid=examples[:1])
    assert len((tmp_path / "mlx" / "train.jsonl").read_text().splitlines()) == 2
    assert (
        json.loads((tmp_path / "mlx" / "valid.jsonl").read_text())["messages"][1]["content"]
        == "Hi there"
    )
    convert(examples, "bedrock", tmp_path / "b.jsonl")
    row = json.loads((tmp_path / "b.jsonl").read_text().splitlines()[0])
    assert row["completion"] == "Hello." and "Hi there" in row["prompt"]
    convert(examples, "bedrock-conversation", tmp_path / "bc.jsonl")
    assert (
        json.loads((tmp_path / "bc.jsonl").read_text().splitlines()[0])["schemaVersion"]
        == "bedrock-conversation-2024"
    )
    with pytest.raises(ConversionError, match="line 1"):
        convert(
            load(write(tmp_path, [SAMPLES["text"]], "t.jsonl")).examples,
            "openai",
            tmp_path / "x.jsonl",
        )
    assert not (tmp_path / "x.jsonl").exists()  # nothing half-written


def test_mixed_formats_list_the_lines_of_each(tmp_path):
    path = write(tmp_path, [CHAT, CHAT, SAMPLES["text"], CHAT])
    report = check(path)
    [mixed] = [f for f in report.errors if "mixes formats" in f.message]
    assert (
        mixed.line == 3
        and "messages: lines 1, 2, 4" in mixed.message
        and "text: lines 3" in mixed.message
    )


BAD = [
    (
        {"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]},
        "unknown role 'robot'",
    ),
    ({"messages": [{"content": "hi"}, {"role": "assistant", "content": "x"}]}, "has no role"),
    (
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c"},
            ]
        },
        "two user turns in a row",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": "a"},
                SYSTEM,
                {"role": "assistant", "content": "c"},
            ]
        },
        "system message not first",
    ),
    (
        {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "c"}]},
        "empty content",
    ),
    ({"messages": [SYSTEM, {"role": "user", "content": "a"}]}, "no assistant turn to learn from"),
    (
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
            ]
        },
        "ends on a user turn",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": "a"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"type": "function", "function": {"name": "f", "arguments": "{oops"}}
                    ],
                },
                {"role": "tool", "content": "1"},
                {"role": "assistant", "content": "ok"},
            ]
        },
        "arguments is not valid JSON",
    ),
    (
        {
            "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
            "tools": [{"type": "function"}],
        },
        "tools[0] has no function name",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                {"role": "assistant", "content": "b"},
            ]
        },
        "image part",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": "say <|im_end|> now"},
                {"role": "assistant", "content": "b"},
            ]
        },
        "special token <|im_end|>",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b", "weight": 0.5},
            ]
        },
        "weight 0.5",
    ),
    ({"prompt": "p", "chosen": "", "rejected": "r"}, "chosen answer has empty content"),
    ({"foo": 1}, "unrecognised record"),
]


def test_every_rule_reports_its_exact_line(tmp_path):
    path = write(tmp_path, [row for row, _ in BAD])
    report = check(path, base="HuggingFaceTB/SmolLM2-135M-Instruct", fmt=None)
    found = {(f.line, f.message) for f in report.findings}
    for line, (_, expected) in enumerate(BAD, start=1):
        assert any(n == line and expected in m for n, m in found), (
            f"line {line}: no finding with {expected!r}: {found}"
        )
    special = next(f for f in report.findings if "special token" in f.message)
    assert special.severity == "error"  # the base's own template tokens are errors
    assert not report.ok


def test_file_level_problems(tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + json.dumps(CHAT).encode() + b"\n{not json}\n" + b'{"text": "caf\xe9"}\n'
    )
    report = check(path)
    messages = {(f.line, f.message.split(" (")[0]) for f in report.errors}
    assert (1, "file starts with a UTF-8 byte-order mark") in messages
    assert any(line == 2 and "invalid JSON" in m for line, m in messages)
    assert any(line == 3 and "not valid UTF-8" in m for line, m in messages)


def test_provider_rules(tmp_path):
    tool_chat = {
        "messages": [
            {"role": "user", "content": "a"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "content": "1"},
            {"role": "assistant", "content": "done"},
        ]
    }
    path = write(tmp_path, [tool_chat] * 3)
    openai = check(path, provider="openai")
    assert any("at least 10 examples" in f.message for f in openai.errors)
    fireworks = check(path, provider="fireworks")
    assert any(f.line == 1 and "does not accept role 'tool'" in f.message for f in fireworks.errors)


def test_exact_and_near_duplicates_and_contamination(tmp_path):
    long = (
        " ".join(f"w{i}" for i in range(40))
        + " the farmer watches from the hill "
        + " ".join(f"v{i}" for i in range(40))
    )
    rows = [
        {"text": "Hello, World!"},
        {"text": "hello world"},
        {"text": long},
        {"text": long.replace("farmer", "baker", 1)},
        {"text": "Completely different content about tax law and spreadsheets."},
    ]
    examples = load(write(tmp_path, rows)).examples
    assert exact_duplicates(examples) == [[1, 2]]
    assert [3, 4] in near_duplicates(examples, threshold=0.8)
    evals = load(
        write(tmp_path, [{"text": "unrelated"}, {"text": "x " + long[:90]}], "eval.jsonl")
    ).examples
    hits = contamination(examples, evals)
    assert {(h.line, h.eval_line) for h in hits} == {(3, 2), (4, 2)}


def test_a_shared_system_prompt_is_not_contamination(tmp_path):
    """The brand-voice data: every example carries the same system prompt as the eval set."""
    system = "You are the help desk of Lumen & Lathe, a neighbourhood tool library and workshop."
    answer = " ".join(f"a{i}" for i in range(20))

    def chat(user: str, assistant: str) -> dict:
        return {
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
                {"role": "assistant", "content": assistant},
            ]
        }

    train = load(
        write(tmp_path, [chat("Can I borrow a drill?", "Yes."), chat("Hi", answer)])
    ).examples
    evals = load(write(tmp_path, [chat("Can I borrow a saw?", answer)], "eval.jsonl")).examples
    hits = contamination(train, evals)
    assert [(h.line, h.eval_line) for h in hits] == [(2, 1)]  # the copied answer, only
    assert "a0 a1" in hits[0].ngram


def test_split_never_separates_near_duplicates(tmp_path):
    base = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma"
    rows = [{"text": f"{base} {i % 5}"} for i in range(10)] + [
        {"text": f"unique sentence number {i} " * 5 + str(i * 7919)} for i in range(30)
    ]
    examples = load(write(tmp_path, rows)).examples
    groups = near_duplicates(examples)
    assert groups  # the property below is vacuous without near-duplicate groups
    for seed in range(5):
        train, valid = split(examples, 0.2, seed=seed)
        assert len(train) + len(valid) == len(examples)
        val_lines = {e.line for e in valid}
        for group in groups:
            assert set(group) <= val_lines or not set(group) & val_lines


def test_check_never_modifies_input(tmp_path):
    path = write(tmp_path, [CHAT, CHAT, {"bad": 1}])
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    check(path, provider="openai")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_real_tokenizer_counts_and_trained_tokens(tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from gateway.data.tokens import chat_ids
    from tests.support.tiny_models import tiny_chatml_tokenizer

    folder = tiny_chatml_tokenizer(tmp_path / "tiny")
    path = write(
        tmp_path,
        [
            CHAT,
            {
                "messages": [
                    {"role": "user", "content": "borrow a drill"},
                    {"role": "assistant", "content": "short answer yes"},
                ]
            },
        ],
    )
    report = check(path, base=str(folder))
    tok = AutoTokenizer.from_pretrained(folder)
    expected = [len(chat_ids(tok, ex.messages)) for ex in report.loaded.examples]
    assert min(expected) > 10
    assert report.tokens.approximate is False
    assert report.tokens.lengths == expected
    assert all(0 < t < n for t, n in zip(report.tokens.trained, expected, strict=True))
    data = report.to_json()
    assert data["tokens"]["approximate"] is False and data["suggested_max_seq_len"] == 128


def test_render_marks_trained_tokens_and_catches_stop_failures(tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from gateway.data.render import render_samples, tokenizer_problems
    from tests.support.tiny_models import tiny_chatml_tokenizer

    folder = tiny_chatml_tokenizer(tmp_path / "tiny")
    tok = AutoTokenizer.from_pretrained(folder)
    examples = load(write(tmp_path, [CHAT])).examples
    [sample] = render_samples(examples, tok, n=5)
    data = sample.to_json()
    assert (
        data["trained_text"] == "Hello.<|im_end|>\n"
    )  # the answer and its end of turn, nothing else
    assert data["text"].startswith("<|im_start|>system") and sample.problems == []
    assert tokenizer_problems(tok) == []
    # a template that forgets the end token after assistant turns: the model would never stop
    tok.chat_template = tok.chat_template.replace("+ '<|im_end|>\\n'", "+ '\\n'")
    [broken] = render_samples(examples, tok, n=1)
    assert any("not closed by a trained end-of-turn token" in p for p in broken.problems)
    tok.pad_token = tok.eos_token
    assert any("pad token = eos token" in p for p in tokenizer_problems(tok))


def test_too_long_for_the_context_plot_and_hf_dataset(tmp_path):
    from click.testing import CliRunner

    from cli.main import main
    from gateway.data.convert import to_hf_dataset

    long = {
        "messages": [
            {"role": "user", "content": "word " * 40_000},
            {"role": "assistant", "content": "ok"},
        ]
    }
    path = write(tmp_path, [CHAT, long])
    report = check(path, base="HuggingFaceTB/SmolLM2-135M-Instruct")  # 8,192-token context
    assert any(f.line == 2 and "over the 8,192-token context" in f.message for f in report.errors)
    png = tmp_path / "hist.png"
    result = CliRunner().invoke(main, ["data", "check", str(path), "--plot", str(png), "--json"])
    assert (
        result.exit_code == 0
        and png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        and png.stat().st_size > 500
    )
    pytest.importorskip("datasets")
    ds = to_hf_dataset(load(write(tmp_path, [CHAT], "one.jsonl")).examples)
    assert ds[0]["messages"][2]["content"] == "Hello."


def test_sdk_surface(tmp_path):
    from gateway import data

    report = data.check(write(tmp_path, [CHAT]))
    assert report.ok and isinstance(report.loaded.examples[0], data.Example)
    with pytest.raises(AttributeError):
        data.not_a_function  # noqa: B018
