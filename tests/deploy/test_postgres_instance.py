"""The production Dagster instance: Postgres storage selected by ALTER_DAGSTER_STORAGE.

* The resolver: `dagster_home` by default, `dagster_home/postgres` for
  ALTER_DAGSTER_STORAGE=postgres, an explicit DAGSTER_HOME wins, anything else is refused; the
  Makefile picks the same home.
* The committed config: dagster_home/postgres/dagster.yaml links to dagster.postgres.yaml, and
  both instance files share the run queue limits (4 runs, one per storefront partition).
* Against a real throwaway PostgreSQL (tests/deploy/postgres_server.py), with only the PG*
  variables and ALTER_DAGSTER_STORAGE=postgres set: the project's sync_job runs through the
  CLI's path (Settings -> jobs_runner) against the emulator, and its run and events are rows
  in Postgres; schedule ticks are stored there; `dagster instance info` accepts the instance;
  the password is in no file of DAGSTER_HOME.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import dagster as dg
import pytest
import yaml
from postgres_server import PostgresServer, PostgresUnavailable, start_postgres

from alter_pipeline.config import ConfigError, Settings, resolve_dagster_home

REPO = Path(__file__).resolve().parents[2]
HOME = REPO / "dagster_home"
PG_VARS = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")


# --- the resolver -----------------------------------------------------------------------------


def test_sqlite_home_by_default_postgres_home_when_selected(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_dagster_home({}) == tmp_path / "dagster_home"
    assert resolve_dagster_home({"ALTER_DAGSTER_STORAGE": "sqlite"}) == tmp_path / "dagster_home"
    postgres = {"ALTER_DAGSTER_STORAGE": "postgres"}
    assert resolve_dagster_home(postgres) == tmp_path / "dagster_home" / "postgres"
    # An explicit DAGSTER_HOME wins (deployments point it wherever they like).
    explicit = {**postgres, "DAGSTER_HOME": str(tmp_path / "elsewhere")}
    assert resolve_dagster_home(explicit) == tmp_path / "elsewhere"


@pytest.mark.parametrize("value", ["mysql", "Postgres", "postgresql"])
def test_unknown_storage_is_refused_naming_the_variable(value, monkeypatch):
    with pytest.raises(ConfigError, match=r"ALTER_DAGSTER_STORAGE must be one of postgres, sql"):
        resolve_dagster_home({"ALTER_DAGSTER_STORAGE": value})
    # Through the settings every entry point reads, even with DAGSTER_HOME set.
    monkeypatch.setenv("ALTER_DAGSTER_STORAGE", value)
    monkeypatch.setenv("DAGSTER_HOME", "/somewhere")
    with pytest.raises(ConfigError, match="ALTER_DAGSTER_STORAGE"):
        Settings.from_env(dotenv=False)


def _make_dagster_home(storage: str | None, tmp_path: Path) -> str:
    probe = tmp_path / "probe.mk"
    probe.write_text("probe:\n\t@echo $$DAGSTER_HOME\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MAKEFLAGS")}
    env.pop("ALTER_DAGSTER_STORAGE", None)
    if storage:
        env["ALTER_DAGSTER_STORAGE"] = storage
    command = ["make", "-s", "-C", str(tmp_path), "-f", str(REPO / "Makefile"), "-f", str(probe)]
    result = subprocess.run([*command, "probe"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_follows_the_same_switch(tmp_path):
    assert _make_dagster_home(None, tmp_path) == f"{tmp_path}/dagster_home"
    assert _make_dagster_home("postgres", tmp_path) == f"{tmp_path}/dagster_home/postgres"


# --- the committed instance files -------------------------------------------------------------


def test_postgres_home_is_a_relative_symlink_to_the_postgres_config():
    link = HOME / "postgres" / "dagster.yaml"
    assert link.is_symlink()
    assert os.readlink(link) == "../dagster.postgres.yaml"
    assert link.resolve() == (HOME / "dagster.postgres.yaml").resolve()


def test_both_instances_share_telemetry_and_run_queue_limits(tmp_path):
    sqlite = yaml.safe_load((HOME / "dagster.yaml").read_text())
    postgres = yaml.safe_load((HOME / "dagster.postgres.yaml").read_text())
    assert "storage" not in sqlite  # Dagster's SQLite default
    assert set(postgres["storage"]) == {"postgres"}
    for key in ("telemetry", "run_coordinator", "run_launcher", "run_monitoring"):
        assert sqlite[key] == postgres[key], key
    assert sqlite["telemetry"] == {"enabled": False}
    # Loaded by Dagster itself (a copy, so nothing is written into the repository).
    shutil.copy(HOME / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    queue = instance.run_coordinator.get_run_queue_config()
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert queue.max_concurrent_runs == 4
    assert queue.tag_concurrency_limits == [
        {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]
    assert instance.run_monitoring_enabled
    assert instance.run_launcher.supports_check_run_worker_health


def test_the_password_is_read_from_the_environment_only(tmp_path, monkeypatch):
    text = (HOME / "dagster.postgres.yaml").read_text()
    for variable in PG_VARS:
        assert f"env: {variable}" in text
    # Without PGPASSWORD the instance does not load, and the error says which variable.
    shutil.copy(HOME / "dagster.postgres.yaml", tmp_path / "dagster.yaml")
    for variable in PG_VARS:
        monkeypatch.setenv(variable, "5432")
    monkeypatch.delenv("PGPASSWORD")
    with pytest.raises(Exception, match="PGPASSWORD"):
        dg.DagsterInstance.from_config(str(tmp_path))


# --- against a real PostgreSQL ----------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = start_postgres()
    except PostgresUnavailable as missing:
        pytest.skip(str(missing))
    yield server
    server.stop()


@pytest.fixture
def postgres_project(tmp_path, monkeypatch, postgres_server) -> Path:
    """A working dir like a deployment's: dagster_home/postgres/dagster.yaml (the symlink's
    target, copied), PG* variables, ALTER_DAGSTER_STORAGE=postgres and no DAGSTER_HOME."""
    home = tmp_path / "dagster_home" / "postgres"
    home.mkdir(parents=True)
    shutil.copy(HOME / "postgres" / "dagster.yaml", home / "dagster.yaml")  # follows the link
    monkeypatch.chdir(tmp_path)
    for variable, value in postgres_server.libpq_env().items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("ALTER_DAGSTER_STORAGE", "postgres")
    # Set then delete, so that monkeypatch also undoes jobs_runner setting DAGSTER_HOME.
    monkeypatch.setenv("DAGSTER_HOME", "unset")
    monkeypatch.delenv("DAGSTER_HOME")
    return home


def _files_containing(root: Path, needle: str) -> list[Path]:
    return [
        path for path in root.rglob("*") if path.is_file() and needle.encode() in path.read_bytes()
    ]


def test_project_sync_job_is_recorded_in_postgres(
    postgres_project, postgres_server, emulator, monkeypatch
):
    from dagster._core.events import DagsterEventType
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    from alter_pipeline.jobs_runner import run_job

    monkeypatch.setenv("ALTER_API_BASE_URL", emulator.base_url)
    monkeypatch.setenv("ALTER_API_KEY", emulator.key)
    monkeypatch.setenv("ALTER_API_TOKEN", emulator.token)
    monkeypatch.setenv("ALTER_DATA_DIR", str(postgres_project.parents[1] / "data"))
    settings = Settings.from_env(dotenv=False)
    assert settings.dagster_home == postgres_project

    outcome = run_job("sync_job", settings)

    assert outcome.success, outcome.error
    # The emulator's whole small store reached the lake (keys may gain a prefix later).
    [orders] = [m for key, m in outcome.metadata.items() if key.split("/")[-1] == "orders"]
    assert orders["dagster/row_count"] == 120
    instance = dg.DagsterInstance.from_config(str(postgres_project))
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    [run] = [r for r in instance.get_runs() if r.run_id == outcome.run_id]
    assert (run.job_name, run.status) == ("sync_job", dg.DagsterRunStatus.SUCCESS)
    with closing(postgres_server.connect()) as db, db.cursor() as cursor:
        cursor.execute(
            "SELECT pipeline_name, status FROM runs WHERE run_id = %s", (outcome.run_id,)
        )
        assert cursor.fetchall() == [("sync_job", "SUCCESS")]
        cursor.execute(
            "SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s"
            " GROUP BY dagster_event_type",
            (outcome.run_id,),
        )
        events = dict(cursor.fetchall())
    # Stored by value: RUN_SUCCESS is still "PIPELINE_SUCCESS" in the table.
    assert events[DagsterEventType.RUN_SUCCESS.value] == 1
    # the sync's tables and the warehouse views
    assert events[DagsterEventType.ASSET_MATERIALIZATION.value] >= 2
    # Storage folders stay under DAGSTER_HOME, and no SQLite run storage was created there.
    assert instance.root_directory == str(postgres_project)
    assert not list(postgres_project.rglob("*.db"))
    assert _files_containing(postgres_project.parents[1], postgres_server.password) == []


def test_schedule_ticks_are_stored_in_postgres(postgres_project, postgres_server):
    from dagster._core.scheduler.instigation import InstigatorType, TickData, TickStatus
    from dagster_postgres import PostgresScheduleStorage

    instance = dg.DagsterInstance.from_config(str(postgres_project))
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    origin, selector = f"origin-{time.time_ns()}", f"selector-{time.time_ns()}"
    instance.create_tick(
        TickData(
            instigator_origin_id=origin,
            instigator_name="sync_schedule",
            instigator_type=InstigatorType.SCHEDULE,
            status=TickStatus.SKIPPED,
            timestamp=time.time(),
            skip_reason="test tick",
            selector_id=selector,
        )
    )
    [tick] = instance.get_ticks(origin, selector)
    assert (tick.instigator_name, tick.status) == ("sync_schedule", TickStatus.SKIPPED)
    with closing(postgres_server.connect()) as db, db.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM job_ticks WHERE selector_id = %s", (selector,))
        assert cursor.fetchone() == (1,)


def test_dagster_cli_accepts_the_postgres_instance(postgres_project, postgres_server):
    dagster = Path(sys.executable).parent / "dagster"
    env = dict(os.environ, DAGSTER_HOME=str(postgres_project))
    result = subprocess.run(
        [str(dagster), "instance", "info"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "run_storage: PostgresRunStorage" in result.stdout
    assert "schedule_storage: PostgresScheduleStorage" in result.stdout
    assert postgres_server.password not in result.stdout + result.stderr
    assert _files_containing(postgres_project, postgres_server.password) == []
