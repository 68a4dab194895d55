"""Writes the dataset corpus the toolkit is tested on (tests/unit/data/test_corpus.py): every
file here was made for this project by this script; run it to regenerate them.

    python tests/corpus/make.py
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

HERE = Path(__file__).parent


def chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def jsonl(rows: list) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


GOOD = [chat(f"What is {i} plus {i}?", f"{i} plus {i} is {2 * i}.") for i in range(1, 13)]
CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_a1",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
        },
        {
            "id": "call_b2",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
        },
    ],
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
PARALLEL = {
    "messages": [
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        CALL,
        {"role": "tool", "tool_call_id": "call_a1", "content": "Oslo: 3 C, rain"},
        {"role": "tool", "tool_call_id": "call_b2", "content": "Rome: 18 C, sun"},
        {"role": "assistant", "content": "Oslo is 3 C and rainy; Rome is 18 C and sunny."},
    ],
    "tools": TOOLS,
}


def write(name: str, data: str | bytes) -> None:
    path = HERE / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))


def main() -> None:
    good = jsonl(GOOD)
    write("empty.jsonl", b"")
    write("whitespace.jsonl", "\n   \n\t\n")
    write("gzipped.jsonl", gzip.compress(good.encode(), mtime=0))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo("train.jsonl", (2026, 1, 1, 0, 0, 0)), good)
    write("zipped.jsonl", buf.getvalue())
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 1234\n"
    write("lfs-pointer.parquet", pointer)
    write("lfs-pointer.jsonl", pointer)
    write("corrupt.parquet", b"PAR1" + bytes(range(256)) * 4 + b"PAR1")
    write("pretty.json", "".join(json.dumps(r, indent=2) + "\n" for r in GOOD[:3]))
    write("bom.jsonl", b"\xef\xbb\xbf" + good.encode())
    latin = [chat(f"Caf\u00e9 n\u00ba {i}?", "Cr\u00e8me br\u00fbl\u00e9e.") for i in range(4)]
    write("cp1252.jsonl", jsonl(latin).encode("cp1252"))
    write("utf16.jsonl", good.encode("utf-16"))
    write(
        "surrogate.jsonl",
        good.splitlines()[0]
        + '\n{"messages": [{"role": "user", "content": "bad \\ud800 half"}, {"role": "assistant", "content": "x"}]}\n',
    )
    write("deep.jsonl", good.splitlines()[0] + "\n" + "[" * 5_000 + "]" * 5_000 + "\n")
    write(
        "nan.jsonl",
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": NaN}]}\n',
    )
    write(
        "control-char.jsonl",
        '{"messages": [{"role": "user", "content": "tab\there"}, {"role": "assistant", "content": "a"}]}\n',
    )
    write(
        "sharegpt-bad-from.jsonl",
        jsonl(
            [
                {
                    "conversations": [
                        {"from": {"name": "human"}, "value": "hi"},
                        {"from": ["gpt"], "value": "yo"},
                    ]
                }
            ]
        ),
    )
    write(
        "content-types.jsonl",
        jsonl(
            [
                {
                    "messages": [
                        {"role": "user", "content": 42},
                        {"role": "assistant", "content": "a"},
                    ]
                },
                {
                    "messages": [
                        {"role": "user", "content": {"text": "hi"}},
                        {"role": "assistant", "content": "a"},
                    ]
                },
                {
                    "messages": [
                        {"role": "user", "content": [{"type": "text", "content": "hi"}]},
                        {"role": "assistant", "content": "a"},
                    ]
                },
                {
                    "messages": [
                        {"role": "user", "content": [{"type": "text", "text": "fine"}]},
                        {"role": "assistant", "content": "a"},
                    ]
                },
            ]
        ),
    )
    write(
        "legacy-functions.jsonl",
        jsonl(
            [
                {
                    "messages": [
                        {"role": "user", "content": "Weather in Oslo?"},
                        {
                            "role": "assistant",
                            "function_call": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                        },
                        {"role": "function", "name": "weather", "content": "3 C"},
                        {"role": "assistant", "content": "It is 3 C."},
                    ],
                    "functions": [TOOLS[0]["function"]],
                }
            ]
        ),
    )
    write(
        "weights.jsonl",
        jsonl(
            [
                {
                    "messages": [
                        {"role": "user", "content": "q"},
                        {"role": "assistant", "content": "a", "weight": True},
                    ]
                },
                {
                    "messages": [
                        {"role": "user", "content": "q"},
                        {"role": "assistant", "content": "b", "weight": 1.0},
                    ]
                },
                {
                    "messages": [
                        {"role": "user", "content": "q"},
                        {"role": "assistant", "content": "c", "weight": 0},
                    ]
                },
            ]
        ),
    )
    obj_args = json.loads(json.dumps(PARALLEL))
    obj_args["messages"][1]["tool_calls"][0]["function"]["arguments"] = {"city": "Oslo"}
    twice = json.loads(json.dumps(PARALLEL))
    twice["messages"][1]["tool_calls"][1]["function"]["arguments"] = json.dumps('{"city": "Rome"}')
    write("arguments.jsonl", jsonl([obj_args, twice]))
    write("parallel-tools.jsonl", jsonl([PARALLEL, GOOD[0]]))
    # LLaMA-Factory's documented forms (data/README.md): ranking ShareGPT, tool calls, KTO, images
    write(
        "llamafactory/sharegpt-preference.json",
        json.dumps(
            [
                {
                    "conversations": [{"from": "human", "value": f"Name a colour, {i}."}],
                    "chosen": {"from": "gpt", "value": "Blue."},
                    "rejected": {"from": "gpt", "value": "I cannot."},
                }
                for i in range(3)
            ],
            indent=2,
        ),
    )
    lf_tools = json.dumps([TOOLS[0]["function"]])
    write(
        "llamafactory/tools.json",
        json.dumps(
            [
                {
                    "conversations": [
                        {"from": "human", "value": "Weather in Oslo and Rome?"},
                        {
                            "from": "function_call",
                            "value": json.dumps(
                                [
                                    {"name": "weather", "arguments": {"city": "Oslo"}},
                                    {"name": "weather", "arguments": {"city": "Rome"}},
                                ]
                            ),
                        },
                        {"from": "observation", "value": "Oslo: 3 C"},
                        {"from": "observation", "value": "Rome: 18 C"},
                        {"from": "gpt", "value": "Cold in Oslo, warm in Rome."},
                    ],
                    "tools": lf_tools,
                }
            ],
            indent=2,
        ),
    )
    write(
        "llamafactory/kto.json",
        json.dumps(
            [
                {
                    "messages": [
                        {"role": "user", "content": "Say hi."},
                        {"role": "assistant", "content": "Hi!"},
                    ],
                    "label": True,
                },
                {
                    "messages": [
                        {"role": "user", "content": "Say hi."},
                        {"role": "assistant", "content": "No."},
                    ],
                    "label": False,
                },
            ],
            indent=2,
        ),
    )
    write(
        "llamafactory/images.json",
        json.dumps(
            [
                {
                    "conversations": [
                        {"from": "human", "value": "<image>What is this?"},
                        {"from": "gpt", "value": "A cat."},
                    ],
                    "images": ["images/cat.jpg"],
                }
            ],
            indent=2,
        ),
    )
    write(
        "llamafactory/qa.json",
        json.dumps(
            [{"question": "2+2?", "answer": "4", "sys": "Be brief."}] * 2
            + [{"question": "3+3?", "answer": "6", "sys": "Be brief."}]
        ),
    )
    write(
        "llamafactory/dataset_info.json",
        json.dumps(
            {
                "qa": {
                    "file_name": "qa.json",
                    "columns": {"prompt": "question", "response": "answer", "system": "sys"},
                },
                "pref": {
                    "file_name": "sharegpt-preference.json",
                    "formatting": "sharegpt",
                    "ranking": True,
                },
                "tools": {
                    "file_name": "tools.json",
                    "formatting": "sharegpt",
                    "columns": {"messages": "conversations", "tools": "tools"},
                },
                "kto": {
                    "file_name": "kto.json",
                    "formatting": "sharegpt",
                    "columns": {"messages": "messages", "kto_tag": "label"},
                    "tags": {
                        "role_tag": "role",
                        "content_tag": "content",
                        "user_tag": "user",
                        "assistant_tag": "assistant",
                    },
                },
            },
            indent=2,
        ),
    )
    # TRL's forms: implicit prompt, unpaired (KTO)
    write(
        "trl-implicit-prompt.jsonl",
        jsonl(
            [
                {
                    "chosen": [
                        {"role": "user", "content": "Sky colour?"},
                        {"role": "assistant", "content": "Blue."},
                    ],
                    "rejected": [
                        {"role": "user", "content": "Sky colour?"},
                        {"role": "assistant", "content": "Green."},
                    ],
                }
            ]
        ),
    )
    write(
        "trl-kto.jsonl",
        jsonl(
            [
                {"prompt": "Say hi.", "completion": "Hi!", "label": True},
                {"prompt": "Say hi.", "completion": "Go away.", "label": False},
            ]
        ),
    )
    # As uploaded: right content, wrong shape for a provider
    write("array.jsonl", json.dumps(GOOD))
    write("messages-and-text.jsonl", jsonl([{**GOOD[0], "text": "stray"}, *GOOD[1:]]))
    dpo = {
        "input": {"messages": [{"role": "user", "content": "Sky colour?"}]},
        "preferred_output": [
            {"role": "assistant", "content": "Blue."},
            {"role": "assistant", "content": "Really blue."},
        ],
        "non_preferred_output": [{"role": "assistant", "content": "Green."}],
    }
    write("dpo-two-preferred.jsonl", jsonl([dpo]))
    write(
        "prompt-completion.jsonl",
        jsonl([{"prompt": f"Q{i}", "completion": f"A{i}"} for i in range(12)]),
    )
    write(
        "sharegpt.jsonl",
        jsonl(
            [
                {
                    "conversations": [
                        {"from": "human", "value": f"Q{i}"},
                        {"from": "gpt", "value": f"A{i}"},
                    ]
                }
                for i in range(3)
            ]
        ),
    )
    write("good.jsonl", good)


def parquet() -> None:
    """chat.parquet: chat rows in Parquet (needs pyarrow)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(GOOD[:3]), HERE / "chat.parquet")


if __name__ == "__main__":
    main()
    parquet()
