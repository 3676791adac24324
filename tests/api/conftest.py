"""Fixtures of the API client tests: a scripted local server and fast-retrying clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from api_testing import KEY, TOKEN, fast_retry
from scripted_server import ScriptedServer

from alter_pipeline.api import AlterClient, RetryPolicy, Timeouts


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


@pytest.fixture
def make_client() -> Iterator[Callable[..., AlterClient]]:
    made: list[AlterClient] = []

    def make(
        base_url: str,
        *,
        key: str = KEY,
        token: str = TOKEN,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
    ) -> AlterClient:
        client = AlterClient(
            base_url,
            key,
            token,
            retry=retry or fast_retry(),
            timeouts=timeouts or Timeouts(connect=2.0, read=5.0),
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(scripted: ScriptedServer, make_client: Callable[..., AlterClient]) -> AlterClient:
    return make_client(scripted.base_url)
