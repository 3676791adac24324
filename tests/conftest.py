"""Shared fixtures: the Alter API emulator on a loopback port.

* `emulator`: a small storefront (120 orders, 12 products, seed 7) with fresh state for every
  test. One server runs for the whole session; each test gets a newly generated store and
  zeroed counters (`RunningEmulator.reset`), so the fixture costs a few milliseconds.
* `emulator_factory(**config)`: a dedicated server with any `EmulatorConfig` fields (latency,
  faults, scopes, live mode, ...); all are stopped at teardown.
* `s3_url`: `s3://<fresh bucket>/lake` on a real S3 server (moto's server mode, started once
  per session on first use), with the standard AWS variables pointing at it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from s3_server import S3Server, start_s3_server

from alter_pipeline.emulator import EmulatorConfig, RunningEmulator, start_emulator

SMALL_STORE: dict[str, Any] = {"orders": 120, "products": 12, "seed": 7}

# A developer's own storefronts.yaml in the checkout must not partition the tests' assets:
# tests that want several storefronts point ALTER_STOREFRONTS_FILE at their own file.
os.environ["ALTER_STOREFRONTS_FILE"] = "/nonexistent/storefronts.yaml"
# The CLI's Rich consoles take their width from COLUMNS when they are created (at import), if
# it is set then: a CI runner's or an xdist worker's COLUMNS=80 squeezed the status tables the
# tests read. One wide width for every test, whatever the terminal.
os.environ["COLUMNS"] = "200"


@pytest.fixture(autouse=True)
def _stop_signals_restored() -> Iterator[None]:
    """Each test starts with this process's own SIGINT and SIGTERM handlers. Dagster run in
    a test (materialize, execute_in_process) gives SIGTERM SIGINT's handler when it ends;
    where SIGINT is ignored (pytest started in the background) that is SIG_IGN, inherited by
    every child a later test starts: a `webhooks listen` child then lost the SIGTERM sent
    before uvicorn took it over, and ran on."""
    kept = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in kept.items():
        if handler is not None:
            signal.signal(signum, handler)


@pytest.fixture(scope="session")
def _emulator_server() -> Iterator[list[RunningEmulator]]:
    holder = [start_emulator(EmulatorConfig(**SMALL_STORE))]
    yield holder
    holder[0].stop()


@pytest.fixture
def emulator(_emulator_server: list[RunningEmulator]) -> RunningEmulator:
    """The small demo storefront, fresh for this test (no faults)."""
    if not _emulator_server[0].is_running:  # a test stopped it: start another
        _emulator_server[0] = start_emulator(EmulatorConfig(**SMALL_STORE))
    _emulator_server[0].reset()
    _emulator_server[0].set_faults([])  # a fault a previous test installed goes with it
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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = start_s3_server()
    yield server
    server.stop()


@pytest.fixture
def s3_url(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """`s3://<fresh bucket>/lake`, with the standard AWS variables pointing at the server
    (and nothing of this machine's own AWS configuration in the way)."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    bucket = s3_server.create_bucket()
    s3_server.requests.clear()
    return f"s3://{bucket}/lake"


# Kill points of the crash tests, per job: [tried, landed] (tests/reliability/test_crashes.py).
CRASH_POINTS: dict[str, list[int]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "teardown":
        return
    for key, value in report.user_properties:
        if key == "crash_points":
            tried, landed = value
            for name, count in tried.items():
                tally = CRASH_POINTS.setdefault(name, [0, 0])
                tally[0] += count
                tally[1] += landed.get(name, 0)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many of the crash tests' kills landed while the work was under way."""
    if CRASH_POINTS:
        per_job = ", ".join(
            f"{name} {landed}/{tried}" for name, (tried, landed) in CRASH_POINTS.items()
        )
        tried_all, landed_all = (sum(column) for column in zip(*CRASH_POINTS.values(), strict=True))
        terminalreporter.write_line(f"crash points landed: {landed_all}/{tried_all} ({per_job})")
