"""Shared fixtures: the Alter API emulator on a loopback port.

* `emulator`: a small storefront (120 orders, 12 products, seed 7) with fresh state for every
  test. One server runs for the whole session; each test gets a newly generated store and
  zeroed counters (`RunningEmulator.reset`), so the fixture costs a few milliseconds.
* `emulator_factory(**config)`: a dedicated server with any `EmulatorConfig` fields (latency,
  faults, scopes, live mode, ...); all are stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from alter_pipeline.emulator import EmulatorConfig, RunningEmulator, start_emulator

SMALL_STORE: dict[str, Any] = {"orders": 120, "products": 12, "seed": 7}


@pytest.fixture(scope="session")
def _emulator_server() -> Iterator[list[RunningEmulator]]:
    holder = [start_emulator(EmulatorConfig(**SMALL_STORE))]
    yield holder
    holder[0].stop()


@pytest.fixture
def emulator(_emulator_server: list[RunningEmulator]) -> RunningEmulator:
    """The small demo storefront, fresh for this test."""
    if not _emulator_server[0].is_running:  # a test stopped it: start another
        _emulator_server[0] = start_emulator(EmulatorConfig(**SMALL_STORE))
    _emulator_server[0].reset()
    return _emulator_server[0]


@pytest.fixture(scope="session")
def _stopping_emulators() -> Iterator[list[RunningEmulator]]:
    stopping: list[RunningEmulator] = []
    yield stopping
    for emulator in stopping:
        emulator.join()


@pytest.fixture
def emulator_factory(
    _stopping_emulators: list[RunningEmulator],
) -> Iterator[Callable[..., RunningEmulator]]:
    """`emulator_factory(latency_ms=50, ...)`: start an emulator with the small store's
    settings overridden by the given `EmulatorConfig` fields."""
    started: list[RunningEmulator] = []

    def start(**config: Any) -> RunningEmulator:
        emulator = start_emulator(EmulatorConfig(**{**SMALL_STORE, **config}))
        started.append(emulator)
        return emulator

    yield start
    # Each shutdown spends ~0.1 s in uvicorn's grace period: signal them now and let them
    # finish in the background; the session joins them at its end.
    for emulator in started:
        emulator.stop(wait=False)
    _stopping_emulators.extend(started)
