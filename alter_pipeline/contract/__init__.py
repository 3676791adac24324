"""The API contract as data: the one package the API client and the emulator share.

Below every other package: `api`, `emulator`, `lake`, `rules`, `config` and `webhooks` read
it, and it imports nothing of this project. `fields` says what the contract's fields mean
(money, timestamps, ids, statuses, the list/detail shapes, `{}` vs null) for every reader.

`examples/` holds every example request and response printed in the public API document,
verbatim; `openapi.json` is the OpenAPI 3.1 description written from that document.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

ORDER_STATUSES: tuple[str, ...] = (
    "shopping_cart",
    "editable",
    "processing",
    "paid",
    "completed",
    "cancelled",
)
# Statuses in which the customer can still edit the order (the contract's "editable flows").
CUSTOMER_EDITABLE_STATUSES: frozenset[str] = frozenset({"shopping_cart", "editable"})
SCOPES: tuple[str, ...] = ("orders:read", "orders:write", "products:read", "embed:session:create")
ORDER_SORT_FIELDS: tuple[str, ...] = ("id", "created_at", "design_name")
SORT_DIRECTIONS: tuple[str, ...] = ("ASC", "DESC")
PREVIEW_SIZES: tuple[str, ...] = ("small", "medium", "big")
EMBED_TOOLS: tuple[str, ...] = ("viewer", "configurator", "customizer")
MAX_PAGE_SIZE = 50
DEFAULT_PRODUCTS_PAGE_SIZE = 9
DEFAULT_BASE_URL = "https://alterproduct.com/public-api/v1"
KEY_HEADER = "x-alter-access-key"
TOKEN_HEADER = "x-alter-access-token"


@cache
def example(name: str) -> Any:
    """A documented example body, e.g. ``example("orders_list.response")``."""
    text = resources.files(__package__).joinpath("examples", f"{name}.json").read_text("utf-8")
    return json.loads(text)


def example_names() -> list[str]:
    folder = resources.files(__package__).joinpath("examples")
    return sorted(
        p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json")
    )
