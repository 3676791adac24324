"""Runs whose process died are marked failed, not left STARTED for ever.

Dagster's run monitoring (`run_monitoring:` in dagster_home/dagster.yaml, run by the daemon
under `ui`) asks the run launcher whether a STARTED run's worker is alive; the
DefaultRunLauncher cannot say, so a run killed with SIGKILL (or whose machine rebooted) stayed
STARTED. `MonitoredRunLauncher` is the DefaultRunLauncher plus that answer: the run worker is the
process of the run's first engine event that names a pid (`Started process for run` of a
launched run, `Executing steps in process` of the CLI's in-process runs), and it is gone when no
such process runs on this machine. A run is judged only on the machine that started it (the
`alter/host` tag), and only "gone" when that is certain, since a wrong answer fails a live run.

The CLI runs jobs without a daemon, so before each job it does the same sweep itself
(`fail_dead_runs`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus
from dagster._core.launcher.base import LaunchRunContext

HOST_TAG = "alter/host"


def this_host() -> str:
    return socket.gethostname()


def run_tags() -> dict[str, str]:
    """Tags of a run started here (the CLI adds them to its in-process runs)."""
    return {HOST_TAG: this_host()}


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the run's worker process, from its first engine event that names one."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        data = event.engine_event_data if event is not None else None
        pid = data.metadata.get("pid") if data is not None else None
        if pid is not None and str(pid.value).isdigit():
            return int(str(pid.value))
    return None


def _process_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process with that pid: not provably ours, not gone
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return True


def worker_gone(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """Why the run's worker is certainly gone, or None (running, or not known here)."""
    if run.tags.get(HOST_TAG) != this_host():
        return None
    pid = worker_pid(instance, run.run_id)
    if pid is None or _process_running(pid):
        return None
    return f"the run's process (pid {pid} on {this_host()}) is gone: killed, or its machine stopped"


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every STARTED run of this machine whose process is gone; their ids."""
    failed = []
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        reason = worker_gone(instance, run)
        if reason is not None:
            instance.report_run_failed(run, f"Marked failed: {reason}.")
            failed.append(run.run_id)
    return failed


class MonitoredRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose run workers' health Dagster's run monitoring can check."""

    @classmethod
    def from_config_value(
        cls, inst_data: Any, config_value: Mapping[str, Any]
    ) -> MonitoredRunLauncher:
        return cls(inst_data=inst_data)

    def launch_run(self, context: LaunchRunContext) -> None:
        # Run workers of the DefaultRunLauncher start on this machine (its code server's).
        self._instance.add_run_tags(context.dagster_run.run_id, run_tags())
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        reason = worker_gone(self._instance, run)
        if reason is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, reason)
