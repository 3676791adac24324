"""Fixtures for webhook tests: a lake with events, a subscriptions file, a real receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from webhook_helpers import SECRET_ENV, Script, Shop, new_secret

from alter_pipeline.config import Settings
from alter_pipeline.webhooks.receiver import Receiver, run_receiver


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    value = new_secret()
    monkeypatch.setenv(SECRET_ENV, value)
    return value


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Shop:
    data_dir = tmp_path / "data"
    webhooks_file = tmp_path / "webhooks.yaml"
    monkeypatch.setenv("ALTER_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ALTER_WEBHOOKS_FILE", str(webhooks_file))
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    settings = Settings(data_dir=data_dir, webhooks_file=webhooks_file)
    return Shop(tmp_path, settings)


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def receiver(secret: str, script: Script) -> Iterator[Receiver]:
    with run_receiver(secret, behaviour=script) as running:
        yield running
