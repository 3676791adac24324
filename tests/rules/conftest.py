"""Fixtures of the rules tests (helpers live in rules_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rules_helpers import client_for

from alter_pipeline.api import AlterClient


@pytest.fixture
def client(emulator: Any) -> Iterator[AlterClient]:
    with client_for(emulator) as api:
        yield api
