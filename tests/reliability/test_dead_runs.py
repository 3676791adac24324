"""Runs that die are marked failed; Ctrl-C of a CLI command is one line and exit 130
(issue 13, point 6).

Runs recorded in a Dagster instance configured by the project's own dagster_home/dagster.yaml:
a run whose process is killed with SIGKILL is marked failed by Dagster's run monitoring (the
daemon's check, called here) and by the next CLI command; a CLI sync against a slow emulator
interrupted with SIGINT prints one line, exits 130 and leaves the previous snapshot current.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import EngineEventData
from dagster._core.launcher.base import LaunchRunContext
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from alter_pipeline.api import AlterClient
from alter_pipeline.emulator import RunningEmulator
from alter_pipeline.lake import Lake
from alter_pipeline.run_monitoring import HOST_TAG, fail_dead_runs, run_tags, worker_pid
from alter_pipeline.sync import run_sync

PROJECT_HOME = Path(__file__).parent.parent.parent / "dagster_home"
Factory = Callable[..., RunningEmulator]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_HOME / "dagster.yaml", home)
    return home


def start_sync(emulator: RunningEmulator, home: Path, data: Path) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        ALTER_API_BASE_URL=emulator.base_url,
        ALTER_API_KEY=emulator.key,
        ALTER_API_TOKEN=emulator.token,
        ALTER_DATA_DIR=str(data),
        DAGSTER_HOME=str(home),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "alter_pipeline.cli", "sync", "--full"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for_started_run(instance: dg.DagsterInstance, process: subprocess.Popen[str]) -> str:
    """The id of the sync's run once it is STARTED and its worker's pid is recorded."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            if worker_pid(instance, run.run_id) == process.pid:
                return run.run_id
        time.sleep(0.1)
    raise AssertionError("the sync never started a run")


# A Dagster run in a process of its own, recorded like the CLI's (in process, with its tags),
# whose step waits until the process is killed: cheaper to start than a whole CLI sync.
LONG_RUN = """
import time, dagster as dg
from alter_pipeline.run_monitoring import run_tags

@dg.op
def wait_to_be_killed():
    time.sleep(600)

job = dg.GraphDefinition("long_run", node_defs=[wait_to_be_killed]).to_job()
job.execute_in_process(instance=dg.DagsterInstance.get(), tags=run_tags())
"""


def test_a_killed_run_is_marked_failed_by_run_monitoring(home: Path) -> None:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled  # the project's dagster.yaml turns it on
        env = dict(os.environ, DAGSTER_HOME=str(home))
        process = subprocess.Popen(
            [sys.executable, "-c", LONG_RUN], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        run_id = wait_for_started_run(instance, process)
        process.kill()
        process.wait(10)
        record = instance.get_run_record_by_id(run_id)
        assert record is not None and record.dagster_run.status == dg.DagsterRunStatus.STARTED
        # What the daemon does every poll_interval_seconds under `ui`:
        monitor_started_run(instance, None, record, logging.getLogger("test"))  # type: ignore[arg-type]
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.FAILURE


def test_the_next_cli_command_marks_a_dead_run_failed(home: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # the process that ran the run, gone
    job = dg.GraphDefinition("stand_in", node_defs=[]).to_job()
    started = dg.DagsterRunStatus.STARTED
    with dg.DagsterInstance.from_config(str(home)) as instance:
        killed = instance.create_run_for_job(job, tags=run_tags(), status=started)
        instance.report_engine_event(
            f"Executing steps in process (pid: {dead.pid})",
            killed,
            EngineEventData.in_process(dead.pid),
        )
        running = instance.create_run_for_job(job, tags=run_tags(), status=started)
        instance.report_engine_event(
            "Executing steps in process", running, EngineEventData.in_process(os.getpid())
        )
        assert fail_dead_runs(instance) == [killed.run_id]
        statuses = [instance.get_run_by_id(r.run_id).status for r in (killed, running)]  # type: ignore[union-attr]
    assert statuses == [dg.DagsterRunStatus.FAILURE, started]


def test_ctrl_c_of_a_sync_is_one_line_and_exit_130(
    emulator: RunningEmulator, emulator_factory: Factory, home: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with AlterClient(emulator.base_url, emulator.key, emulator.token) as client:
        run_sync(client, Lake(data), now=emulator.store.now())  # the snapshot to keep
    emulator = emulator_factory(orders=400, latency_ms=300)  # the same storefront, slow
    current = (data / "lake").resolve()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        process = start_sync(emulator, home, data)
        wait_for_started_run(instance, process)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines() == [
        "interrupted: nothing was committed, the previous snapshot stays current"
    ]
    assert (data / "lake").resolve() == current


def test_a_run_the_daemon_launches_is_tagged_with_this_machine_before_it_starts(
    home: Path,
) -> None:
    # The daemon launches queued runs through the project's launcher (found by the soak: it
    # failed every scheduled run). Without a code server the DefaultRunLauncher it hands over
    # to refuses, after the tag is written.
    job = dg.GraphDefinition("stand_in", node_defs=[]).to_job()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.create_run_for_job(job)
        context = LaunchRunContext(dagster_run=run, workspace=None)
        with pytest.raises(dg.DagsterInvariantViolationError, match="requires a workspace"):
            instance.run_launcher.launch_run(context)
        tagged = instance.get_run_by_id(run.run_id)
    assert tagged is not None and tagged.tags.get(HOST_TAG) == run_tags()[HOST_TAG]
