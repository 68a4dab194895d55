"""Where eval reports live: `$TUNEGATE_HOME/eval/reports/ID/report.{json,md}`."""

from __future__ import annotations

import json
import time
from typing import Any

from gateway.catalog import tunegate_home


def store(report_id: str, data: dict[str, Any], markdown: str) -> str:
    """Write both forms of a report; returns its folder."""
    folder = tunegate_home() / "eval" / "reports" / report_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps({**data, "at": time.time()}, indent=1))
    (folder / "report.md").write_text(markdown)
    return str(folder)
