"""Starting and stopping: in-process, as `python -m alter_pipeline.emulator`, fresh resets."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from alter_pipeline.emulator import EmulatorConfig, RunningEmulator, run_emulator, start_emulator
from alter_pipeline.emulator.__main__ import parse_args
from alter_pipeline.emulator.config import DEMO_KEY

from ._http import TLS


def test_a_started_emulator_answers_its_first_request() -> None:
    # start_emulator returns once the server listens (start-up time: benchmarks/).
    emulator = start_emulator(EmulatorConfig(orders=120, products=12, seed=99))
    try:
        answer = httpx.get(emulator.base_url + "/healthz", verify=TLS, timeout=5)
        assert answer.status_code == 200
    finally:
        emulator.stop(wait=False)


def test_run_emulator_serves_on_a_free_loopback_port_and_stops() -> None:
    with run_emulator(EmulatorConfig(orders=120, products=12)) as emulator:
        assert emulator.base_url.startswith("http://127.0.0.1:")
        assert emulator.base_url.endswith("/public-api/v1")
        answer = httpx.get(emulator.base_url + "/auth/check", headers=emulator.headers, verify=TLS)
        assert answer.status_code == 200
    assert not emulator.is_running
    with pytest.raises(httpx.ConnectError):
        httpx.get(emulator.base_url + "/healthz", verify=TLS)


def test_run_emulator_takes_config_overrides() -> None:
    with run_emulator(EmulatorConfig(orders=10), seed=3, orders=15) as emulator:
        assert (emulator.config.seed, emulator.store.order_count()) == (3, 15)


def test_reset_gives_fresh_state_on_the_same_port(
    emulator_factory: Callable[..., RunningEmulator],
) -> None:
    emulator = emulator_factory()
    first_id = emulator.store.order_ids()[0]
    emulator.store.delete_order(first_id)
    url = emulator.base_url
    emulator.reset()
    assert emulator.base_url == url
    assert first_id in emulator.store.order_ids()
    answer = httpx.get(f"{url}/customer-orders/{first_id}", headers=emulator.headers, verify=TLS)
    assert answer.status_code == 200


def test_command_line_flags_build_the_config() -> None:
    config = parse_args(
        ["--port", "0", "--orders", "50", "--scopes", "orders:read, products:read",
         "--latency-ms", "5", "--fault-rate", "0.1", "--rate-limit", "30", "--live"]
    )  # fmt: skip
    assert (config.port, config.orders, config.latency_ms) == (0, 50, 5.0)
    assert config.scopes == ("orders:read", "products:read")
    assert (config.fault_rate, config.rate_limit, config.live) == (0.1, 30.0, True)


def test_command_line_rejects_an_unknown_scope() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--scopes", "orders:admin"])


def test_module_serves_and_prints_url_and_demo_credentials() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALTER_API_")}
    command = [sys.executable, "-m", "alter_pipeline.emulator", "--port", "0", "--orders", "20"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.startswith("Alter API emulator listening on http://127.0.0.1:")
        base_url = first.split()[-1]
        rest = "".join(server.stdout.readline() for _ in range(3))
        assert DEMO_KEY in rest
        assert httpx.get(base_url + "/healthz", verify=TLS).json() == {"ok": True}
    finally:
        server.terminate()
        server.wait(timeout=10)
