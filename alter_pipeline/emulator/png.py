"""Preview images: small valid PNG files drawn with zlib and struct, no imaging library.

Each picture is the product's colour with a lighter band across the middle, so previews of
different products look different and a decoder has more than one row value to check.
"""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache

# Edge length in pixels of each documented preview size.
PREVIEW_PIXELS: dict[str, int] = {"small": 64, "medium": 256, "big": 512}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


@lru_cache(maxsize=256)
def preview_png(rgb: tuple[int, int, int], size: int) -> bytes:
    """A `size` x `size` 8-bit RGB PNG in colour `rgb` with a lighter middle band."""
    plain = bytes(rgb) * size
    light = bytes(min(255, c + 60) for c in rgb) * size
    band = range(size * 3 // 8, size * 5 // 8)
    # Each scanline starts with filter type 0 (None).
    raw = b"".join(b"\x00" + (light if row in band else plain) for row in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit truecolour
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )
