"""The dbt project's wiring (alter_pipeline/analytics.py): which dbt runs, when the manifest is
re-parsed, what dbt is told; the dbt runs themselves are in tests/assets/test_analytics.py."""

import os
import shutil
import sys
import threading
from pathlib import Path

import yaml
from typer.testing import CliRunner

from alter_pipeline.analytics import (
    DBT_PROJECT_DIR,
    dbt_executable,
    dbt_lock,
    manifest_is_stale,
)
from alter_pipeline.cli import app


def test_dbt_is_the_one_beside_this_interpreter_even_with_an_empty_path(monkeypatch):
    monkeypatch.setenv("PATH", "")
    found = Path(dbt_executable())
    assert found.parent == Path(sys.executable).parent
    assert found.name == "dbt"


def test_dbt_sends_no_anonymous_usage_statistics():
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    assert project["flags"]["send_anonymous_usage_stats"] is False


def test_the_manifest_is_stale_once_a_model_changes_after_it(tmp_path):
    project = tmp_path / "analytics"
    shutil.copytree(DBT_PROJECT_DIR / "models", project / "models")
    assert manifest_is_stale(project)  # never parsed
    manifest = project / "target" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text("{}")
    assert not manifest_is_stale(project)
    model = project / "models" / "marts" / "revenue_daily.sql"
    later = manifest.stat().st_mtime + 5
    os.utime(model, (later, later))
    assert manifest_is_stale(project)


def test_report_before_any_model_is_built_is_one_clear_line(tmp_path):
    result = CliRunner(env={"ALTER_DATA_DIR": str(tmp_path)}).invoke(app, ["report"])
    assert result.exit_code == 2
    assert "alter-pipeline analytics" in result.output
    assert "Traceback" not in result.output


def test_a_second_dbt_run_waits_for_the_first(tmp_path):
    order: list[str] = []
    second_started = threading.Event()

    def second() -> None:
        second_started.set()
        with dbt_lock(tmp_path):
            order.append("second")

    with dbt_lock(tmp_path):
        waiter = threading.Thread(target=second)
        waiter.start()
        assert second_started.wait(5)
        waiter.join(0.5)  # it cannot get in while the first holds the lock
        assert waiter.is_alive() and order == []
        order.append("first")
    waiter.join(5)
    assert order == ["first", "second"]
