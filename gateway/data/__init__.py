"""The dataset toolkit: read any supported format, check it by line, deduplicate, convert, split,
render, and count tokens. Names load on first use so planning only pays for what it reads.

    from gateway import data
    report = data.check("train.jsonl", base="Qwen/Qwen3-8B")
    data.convert(data.load("train.jsonl").examples, "together", Path("together.jsonl"))
"""

from __future__ import annotations

from gateway.util.lazy import lazy_getattr

_EXPORTS = {
    "DatasetReport": "gateway.data.report",
    "quick_report": "gateway.data.report",
    "check": "gateway.data.checker",
    "CheckReport": "gateway.data.checker",
    "load": "gateway.data.formats",
    "Example": "gateway.data.formats",
    "convert": "gateway.data.convert",
    "to_hf_dataset": "gateway.data.convert",
    "dedup_file": "gateway.data.dedup",
    "split_file": "gateway.data.dedup",
    "token_stats": "gateway.data.tokens",
    "render_samples": "gateway.data.render",
    "render": "gateway.data.render",
    "load_clean": "gateway.data.prepare",
    "prepare": "gateway.data.prepare",
}
__all__ = [
    "CheckReport",
    "DatasetReport",
    "Example",
    "check",
    "convert",
    "dedup_file",
    "load",
    "load_clean",
    "prepare",
    "quick_report",
    "render",
    "render_samples",
    "split_file",
    "to_hf_dataset",
    "token_stats",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS)
