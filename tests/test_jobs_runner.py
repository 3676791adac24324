"""`run_job`: a job run in this process, recorded in the instance; the caller hears progress."""

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from signal_helpers import SigintInFinalizer

from alter_pipeline.config import Settings
from alter_pipeline.jobs_runner import job_outcome, run_job


@pytest.fixture
def project(emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ALTER_API_BASE_URL", emulator.base_url)
    monkeypatch.setenv("ALTER_API_KEY", emulator.key)
    monkeypatch.setenv("ALTER_API_TOKEN", emulator.token)
    monkeypatch.setenv("ALTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("ALTER_STOREFRONTS_FILE", str(tmp_path / "no-storefronts.yaml"))
    return Settings.from_env(dotenv=False)


def test_the_progress_listener_given_to_run_job_hears_every_page_of_the_sync(project, emulator):
    heard: list[tuple[str, int, int, int]] = []

    outcome = run_job("sync_job", project, progress=lambda *update: heard.append(update))

    assert outcome.success, outcome.error
    orders = [u for u in heard if u[0] == "orders"]
    assert orders and orders[-1][1] == orders[-1][2]  # the last update: every page done
    assert orders[-1][3] == outcome.metadata["orders"]["dagster/row_count"]


def test_a_listener_is_not_heard_by_a_later_run_without_one(project, emulator):
    """The listener belongs to one run's definitions, not to a module: a later run of the same
    process does not call it."""
    heard: list[Any] = []
    run_job("sync_job", project, progress=lambda *update: heard.append(update))
    count = len(heard)

    assert run_job("sync_job", project).success
    assert len(heard) == count


def test_a_ctrl_c_python_dropped_mid_sync_still_stops_it_before_the_commit(
    project, emulator, monkeypatch
):
    """Dagster raises on SIGINT wherever the main thread is; in a finalizer Python drops that
    raise. The sync must still end interrupted, with the previous snapshot current."""
    assert run_job("sync_job", project).success
    current = (project.data_dir / "lake").resolve()
    dropped: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: dropped.append(unraisable))

    def interrupt_once(entity: str, *_: int) -> None:
        if not dropped:  # products: an incremental sync lists no orders
            assert threading.current_thread() is threading.main_thread()
            SigintInFinalizer()

    outcome = run_job("sync_job", project, progress=interrupt_once)

    assert [type(u.exc_value).__name__ for u in dropped] == ["DagsterExecutionInterruptedError"]
    assert not outcome.success
    assert (outcome.error or "").startswith("DagsterExecutionInterrupted")
    assert (project.data_dir / "lake").resolve() == current


def test_a_run_leaves_sigterm_as_it_found_it_where_sigint_is_ignored(project, emulator):
    """Started in the background, a process ignores SIGINT; Dagster gives SIGTERM SIGINT's
    handler when a run ends. After run_job, a `kill` must still end the command."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # conftest puts both back after the test
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    outcome = run_job("maintenance_job", project)

    assert outcome.success, outcome.error
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


class _InterruptedWhileStarting(dg.ConfigurableResource):
    """Ctrl-C while the run sets up, before any step has started."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # Dagster's handler turns the signal into its interruption error


def test_a_ctrl_c_before_any_step_is_reported_as_an_interruption_not_as_no_error():
    @dg.asset
    def never_started(starting: _InterruptedWhileStarting) -> None:
        raise AssertionError("the step must not run")

    job = dg.define_asset_job("interrupted", executor_def=dg.in_process_executor)
    defs = dg.Definitions(
        assets=[never_started], jobs=[job], resources={"starting": _InterruptedWhileStarting()}
    )
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("interrupted").execute_in_process(
            instance=instance, raise_on_error=False
        )
    outcome = job_outcome(result)
    assert not outcome.success
    assert outcome.error is not None
    assert outcome.error.startswith("DagsterExecutionInterrupted")  # the CLI's exit 130
