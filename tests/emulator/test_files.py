"""GET /files/public/products/:productId/:size: real PNG bytes, CORS, no credentials."""

from __future__ import annotations

import struct
import zlib

import httpx
import pytest

from alter_pipeline.emulator import RunningEmulator
from alter_pipeline.emulator.png import PNG_SIGNATURE

from ._http import TLS


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """The (type, data) chunks of a PNG, checking each CRC."""
    assert png.startswith(PNG_SIGNATURE)
    found, at = [], len(PNG_SIGNATURE)
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + data) & 0xFFFFFFFF == crc
        found.append((kind, data))
        at += 12 + length
    return found


def fetch(emulator: RunningEmulator, product_id: int, size: str) -> httpx.Response:
    # Deliberately without credentials.
    url = f"{emulator.base_url}/files/public/products/{product_id}/{size}"
    return httpx.get(url, verify=TLS)


@pytest.mark.parametrize(("size", "pixels"), [("small", 64), ("medium", 256), ("big", 512)])
def test_preview_is_a_valid_png_of_the_size(
    emulator: RunningEmulator, size: str, pixels: int
) -> None:
    answer = fetch(emulator, 1, size)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
    parts = chunks(answer.content)
    assert [kind for kind, _ in parts] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour = struct.unpack(">IIBB", parts[0][1][:10])
    assert (width, height, depth, colour) == (pixels, pixels, 8, 2)
    raw = zlib.decompress(parts[1][1])
    assert len(raw) == pixels * (1 + 3 * pixels)


def test_preview_allows_any_origin(emulator: RunningEmulator) -> None:
    assert fetch(emulator, 2, "medium").headers["access-control-allow-origin"] == "*"


def test_preview_accepts_the_png_suffix_of_media_links(emulator: RunningEmulator) -> None:
    assert fetch(emulator, 2, "big.png").content == fetch(emulator, 2, "big").content


def test_previews_of_different_products_differ(emulator: RunningEmulator) -> None:
    assert fetch(emulator, 1, "small").content != fetch(emulator, 2, "small").content


@pytest.mark.parametrize(("product_id", "size"), [(999, "small"), (1, "huge")])
def test_unknown_product_or_size_is_a_404(
    emulator: RunningEmulator, product_id: int, size: str
) -> None:
    answer = fetch(emulator, product_id, size)
    assert answer.status_code == 404
    assert "message" in answer.json()
