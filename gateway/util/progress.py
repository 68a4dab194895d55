"""Progress on stderr: a byte-count bar for downloads and uploads (rich), safe to nest in `with`,
and `step_line` for counts that update in place on a terminal."""

from __future__ import annotations

import sys
from typing import Any, TextIO


def step_line(text: str, *, last: bool, stream: TextIO | None = None) -> None:
    """One progress update: redrawn in place on a terminal; a line of its own otherwise (a log
    or a CI transcript gets `base: 8/22 answered` and `base: 16/22 answered` on two lines, not
    glued together by carriage returns)."""
    out = stream or sys.stderr
    if out.isatty():
        print(f"\r{text}", end="\n" if last else "", file=out, flush=True)
    else:
        print(text, file=out, flush=True)


class ByteProgress:
    def __init__(self, label: str):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task(label, total=None)

    def update(self, done: int, total: int | None) -> None:
        self._progress.update(self._task, completed=done, total=total)

    def __enter__(self) -> ByteProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()
