"""Run the pipeline's Dagster jobs in this process, recorded in the $DAGSTER_HOME instance.

The CLI and the demo use this so their runs show up in the Dagster UI like scheduled ones.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from alter_pipeline.config import Settings
from alter_pipeline.location import build_run_definitions
from alter_pipeline.run_monitoring import fail_dead_runs, run_tags
from alter_pipeline.storefronts import configured
from alter_pipeline.sync import ProgressCallback


@dataclass
class JobOutcome:
    run_id: str
    success: bool
    error: str | None = None
    failed_checks: list[str] = field(default_factory=list)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)


# Written where DAGSTER_HOME has no dagster.yaml yet: SQLite storage (the default), no telemetry.
DEFAULT_INSTANCE_YAML = "telemetry:\n  enabled: false\n"


def instance(settings: Settings) -> dg.DagsterInstance:
    home = Path(settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DEFAULT_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


# dagster-dbt echoes every dbt log line to stdout; the run's event log and dbt's own log
# ($ALTER_DATA_DIR/analytics/target/dbt.log) keep them, the terminal does not need them.
CHATTY_JOBS = frozenset({"analytics_job"})


def run_job(
    name: str,
    settings: Settings,
    run_config: dict[str, Any] | None = None,
    *,
    partition_key: str | None = None,
    log_level: str = "CRITICAL",
    progress: ProgressCallback | None = None,
) -> JobOutcome:
    """Run job `name` in this process; Dagster's console log shows `log_level` and above (the
    full event log is in the instance either way). `progress` also hears the sync's progress
    (the CLI's progress bar); the run's log has it regardless."""
    # Built for these settings (not the code location's `defs`, fixed when first imported), so
    # a storefronts file set since then is honoured, and for this caller's progress listener.
    defs = build_run_definitions(name, configured(settings.storefronts_file), progress)
    job = defs.resolve_job_def(name)
    config = {"loggers": {"console": {"config": {"log_level": log_level}}}} | (run_config or {})
    dagster_instance = instance(settings)
    # No daemon watches the CLI's runs: a run of an earlier command that was killed is marked
    # failed here (the UI would show it STARTED for ever otherwise).
    fail_dead_runs(dagster_instance)
    with (
        _stop_signals_kept(),
        contextlib.redirect_stdout(io.StringIO())
        if name in CHATTY_JOBS
        else contextlib.nullcontext(),
    ):
        result = job.execute_in_process(
            run_config=config,
            instance=dagster_instance,
            raise_on_error=False,
            partition_key=partition_key,
            tags=run_tags(),
        )
    return job_outcome(result)


def job_outcome(result: dg.ExecuteInProcessResult) -> JobOutcome:
    """What a finished in-process run did: its first error, materializations, failed checks."""
    outcome = JobOutcome(run_id=result.run_id, success=result.success)
    for event in result.all_events:
        if event.is_step_failure and outcome.error is None:
            outcome.error = _root_message(event.step_failure_data.error)
        # A run that failed before any step did (Ctrl-C during its set-up, a resource that
        # could not start) says why only in its failure event.
        if event.is_run_failure and outcome.error is None:
            outcome.error = _root_message(event.job_failure_data.error)
        if event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            outcome.metadata[materialization.asset_key.to_user_string()] = {
                key: value.value for key, value in materialization.metadata.items()
            }
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            key = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            outcome.failed_checks.append(key)
    return outcome


@contextlib.contextmanager
def _stop_signals_kept() -> Iterator[None]:
    """Put SIGINT's and SIGTERM's handlers back as they were once the run is over. Dagster
    gives SIGTERM whatever SIGINT has when a run ends: in a process started in the background
    (SIGINT ignored, as a shell does for `cmd &`), SIGTERM stayed ignored for the rest of the
    command, and for every process it started (a `kill` of `make demo` went unheard)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread can set handlers (Dagster leaves them alone there too)
        return
    kept = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in kept.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(signum, handler)


def _root_message(error: Any) -> str:
    """The innermost cause's message: the client's own error, not Dagster's wrapper."""
    while error is not None and getattr(error, "cause", None) is not None:
        error = error.cause
    if error is None:
        return "unknown error"
    message = error.message.strip().splitlines()[-1]
    # Dagster writes "module.path.ErrorClass: text"; keep the class name, drop the module path.
    if error.cls_name and f"{error.cls_name}: " in message:
        message = message.split(f"{error.cls_name}: ", 1)[1]
    return f"{error.cls_name}: {message}" if error.cls_name else message
