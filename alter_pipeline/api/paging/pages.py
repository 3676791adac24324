"""What a listing is, what it yields (`Page`, `FastPage`) and what one page read holds."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Page:
    """Rows of one listing page not yielded before, as raw JSON dicts (numbers as Decimal)."""

    offset: int
    items: list[dict[str, Any]]
    total: int


class Decoded(Protocol):
    """What a listing's fast decoder makes of a page body: each row's id (None where a row
    has no integer id) and the listing's `total`; the rest is the decoder's own."""

    ids: list[int | None]
    total: int


Decoder = Callable[[list[bytes]], list[Decoded | None]]
"""Reads page bodies without Python objects per row: for each body its `Decoded`, or None (that
page is then decoded as JSON). Gets several bodies at once when pages arrive faster than it
reads them."""


@dataclass(frozen=True, slots=True)
class FastPage:
    """A page a listing's decoder read: `decoded` holds every row of the page and `keep` the
    positions of the rows not yielded before. `items` decodes them as JSON (the same dicts a
    `Page` holds), for a consumer that cannot use `decoded`."""

    offset: int
    total: int
    decoded: Decoded
    keep: list[int]
    body: bytes
    envelope: str

    @property
    def items(self) -> list[dict[str, Any]]:
        rows = json.loads(self.body, parse_float=Decimal)[self.envelope]["items"]
        return [rows[i] for i in self.keep]


@dataclass(frozen=True, slots=True)
class Fetched:
    """One page as read: each row's id (None: no integer id), `total`, and the rows (`items`,
    or `decoded` with `body` when the fast decoder read it)."""

    ids: list[int | None]
    total: int
    items: list[Any] | None = None
    decoded: Decoded | None = None
    body: bytes = b""

    def page(self, offset: int, keep: list[int], envelope: str) -> Page | FastPage:
        if self.decoded is not None:
            return FastPage(offset, self.total, self.decoded, keep, self.body, envelope)
        assert self.items is not None
        return Page(offset=offset, items=[self.items[i] for i in keep], total=self.total)


@dataclass(frozen=True, slots=True)
class Listing:
    """Which list endpoint to page, with its filters (already wire-formatted)."""

    path: str
    envelope: str  # "order" or "products": the key that holds {"items", "total"}
    scope: str
    filters: dict[str, str] = field(default_factory=dict)
    by_id: bool = True  # ask for ascending id order (and use range proofs)
    # When the server refuses id ordering with a 4xx: page in its default order instead.
    by_id_optional: bool = False
    # Reads page bodies into `FastPage`s where it can (e.g. lake.fast_flatten's Arrow reader).
    decoder: Decoder | None = None


def row_id(row: Any) -> int | None:
    value = row.get("id") if isinstance(row, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
