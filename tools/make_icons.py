"""Draw the app icons (a bold white "T" on the theme colour) as PNGs, standard library only.

Run: python3 tools/make_icons.py  (writes static/icons/icon-192.png, icon-512.png, maskable-512.png)
"""

from __future__ import annotations

import os
import struct
import zlib

THEME = (0x1E, 0x3A, 0x8A)  # #1e3a8a, the manifest's theme_color
WHITE = (0xFF, 0xFF, 0xFF)
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static", "icons")


def _inside_t(x: float, y: float, scale: float) -> bool:
    """Is the point (in 0..1 units) inside the T, drawn at ``scale`` about the centre?"""
    x = (x - 0.5) / scale + 0.5
    y = (y - 0.5) / scale + 0.5
    bar = 0.24 <= x <= 0.76 and 0.24 <= y <= 0.38
    stem = 0.42 <= x <= 0.58 and 0.24 <= y <= 0.78
    return bar or stem


def _png(size: int, scale: float) -> bytes:
    rows = []
    samples = ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75))
    for py in range(size):
        row = bytearray(b"\0")  # filter type: none
        for px in range(size):
            hits = sum(_inside_t((px + dx) / size, (py + dy) / size, scale) for dx, dy in samples)
            a = hits / len(samples)
            row += bytes(round(t * (1 - a) + w * a) for t, w in zip(THEME, WHITE, strict=True))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    # The maskable icon keeps the mark inside the central safe zone (a circle of 40% radius).
    for name, size, scale in (
        ("icon-192.png", 192, 1.0),
        ("icon-512.png", 512, 1.0),
        ("maskable-512.png", 512, 0.72),
    ):
        with open(os.path.join(OUT, name), "wb") as fh:
            fh.write(_png(size, scale))


if __name__ == "__main__":
    main()
