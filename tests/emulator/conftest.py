"""Fixtures of the emulator tests: an HTTP client bound to the fresh small emulator."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from alter_pipeline.emulator import RunningEmulator

from ._http import client_of


@pytest.fixture
def client(emulator: RunningEmulator) -> Iterator[httpx.Client]:
    with client_of(emulator) as c:
        yield c
