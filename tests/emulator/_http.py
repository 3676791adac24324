"""Helpers to talk to an emulator over its loopback socket."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from alter_pipeline.emulator import RunningEmulator

# One TLS context for every client: building one per client costs ~70 ms of certificate
# loading, and the emulator speaks plain HTTP anyway.
TLS = ssl.create_default_context()


def client_of(emulator: RunningEmulator, **headers: str) -> httpx.Client:
    """An authenticated client of `emulator` (use it in a `with`)."""
    return httpx.Client(
        base_url=emulator.base_url,
        headers={**emulator.headers, **headers},
        timeout=10,
        verify=TLS,
    )


def find_product(emulator: RunningEmulator, **wants: Any) -> int:
    """The id of the first catalog product meeting every condition in `wants`:
    `measure_keys` (e.g. ("D", "H")), `grouped`, `variant_details` (non-null ints)."""
    for product in emulator.store.catalog.products:
        variant = product.variants[0]
        facts = {
            "measure_keys": tuple(k for k, _ in variant.size.measure or ()),
            "grouped": product.group is not None,
            "variant_details": variant.min_order_quantity is not None,
        }
        if all(facts[name] == value for name, value in wants.items()):
            return product.id
    raise LookupError(f"no product with {wants} in this catalog")
