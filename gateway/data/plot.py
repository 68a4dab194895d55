"""A token-length histogram as a PNG, written with zlib alone (no plotting library needed)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

WIDTH, HEIGHT, MARGIN = 640, 320, 20


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def histogram_png(
    bins: list[tuple[int, int, int]], path: Path, marks: tuple[int, ...] = ()
) -> Path:
    """Bars for (low, high, count) bins; vertical red lines at `marks` (e.g. p95, max_seq_len)."""
    top = max((c for _, _, c in bins), default=0) or 1
    hi = max((h for _, h, _ in bins), default=1)
    pixels = [[(255, 255, 255)] * WIDTH for _ in range(HEIGHT)]
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN
    bar_w = max(1, plot_w // max(1, len(bins)))
    for i, (_, _, count) in enumerate(bins):
        bar_h = round(plot_h * count / top)
        for x in range(MARGIN + i * bar_w, MARGIN + (i + 1) * bar_w - 1):
            for y in range(HEIGHT - MARGIN - bar_h, HEIGHT - MARGIN):
                pixels[y][x] = (60, 110, 200)
    for mark in marks:
        x = MARGIN + min(plot_w - 1, round(plot_w * mark / hi))
        for y in range(MARGIN, HEIGHT - MARGIN):
            pixels[y][x] = (210, 40, 40)
    for x in range(MARGIN, WIDTH - MARGIN):
        pixels[HEIGHT - MARGIN][x] = (0, 0, 0)
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(
        b"IHDR", struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 2, 0, 0, 0)
    )
    png += _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")
    path = Path(path)
    path.write_bytes(png)
    return path
