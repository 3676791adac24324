"""`alter-pipeline rules check | test | apply`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from rules_helpers import PATCH_STATUS, sync_lake
from test_rules_apply import STALE_CARTS, stale_cart_ids
from typer.testing import CliRunner

from alter_pipeline.cli.rules import rules_app
from alter_pipeline.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]
app = typer.Typer()
app.add_typer(rules_app, name="rules")


def cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner(env=env).invoke(app, ["rules", *args])


def write_rules(tmp_path: Path, text: str = STALE_CARTS) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_check_summarises_a_valid_file():
    example = load_rules(ROOT / "rules.example.yaml")  # the demo tunes its numbers
    first, limit = example.rules[0], example.max_transitions_per_run
    result = cli("check", str(ROOT / "rules.example.yaml"))
    assert result.exit_code == 0, result.output
    assert f"cancel-stale-carts  (priority 10, max {first.max_per_run}/run)" in result.stdout
    assert "when status in [shopping_cart, editable] and age > 30d and idle > 30d" in result.stdout
    assert f"5 rules (4 enabled, 1 on inbound events), at most {limit} status changes per run" in (
        result.stdout
    )
    assert "completed     │ — (final)" in result.stdout


def test_check_lists_every_problem_with_line_and_column_and_exits_2(tmp_path):
    path = write_rules(tmp_path, STALE_CARTS.replace("age:", "agee:").replace("30d}", "30x}"))
    result = cli("check", str(path))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{path}:6:7: unknown field 'agee' of orders; did you mean 'age'?",
        f"{path}:7:18: idle: not a duration: '30x' (write e.g. 30d, 12h, 1d12h, 90m)",
        f"2 problems in {path}",
    ]


def test_check_of_a_missing_file_is_one_line_and_exit_2(tmp_path):
    result = cli("check", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    missing = tmp_path / "nope.yaml"
    assert result.stderr.splitlines()[0] == f"{missing}:1:1: No such file or directory"


@pytest.fixture
def warehouse_env(emulator: Any, tmp_path: Path) -> dict[str, str]:
    sync_lake(emulator, tmp_path / "data")
    return {
        "ALTER_DATA_DIR": str(tmp_path / "data"),
        "ALTER_API_BASE_URL": emulator.base_url,
        "ALTER_API_KEY": emulator.key,
        "ALTER_API_TOKEN": emulator.token,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }


def test_test_explains_each_rule_on_an_order_with_actual_values(emulator, tmp_path, warehouse_env):
    stale = stale_cart_ids(emulator)[0]
    young = next(o["id"] for o in emulator.store.orders_list()[::-1] if o["orderStatus"] == "paid")
    path = write_rules(tmp_path)
    now = emulator.store.now().isoformat()
    result = cli("test", str(path), "--order", str(stale), "--order", str(young), "--now", now,
                 env=warehouse_env)  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"order {stale}: " in out and "MATCH     cancel-stale-carts" in out
    assert "→ cancel-stale-carts would set status cancelled" in out
    assert f"order {young}: paid" in out
    reason = "status in [shopping_cart, editable] failed (actual: paid)"
    assert f"no match  cancel-stale-carts: {reason}" in out
    assert "→ no rule would change this order" in out


def test_test_of_an_order_not_in_the_warehouse_is_one_line_and_exit_2(tmp_path, warehouse_env):
    result = cli("test", str(write_rules(tmp_path)), "--order", "999999", env=warehouse_env)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "order 999999 is not in the warehouse" in result.stderr


def test_test_without_an_order_previews_a_run_over_the_warehouse(emulator, tmp_path, warehouse_env):
    path = write_rules(tmp_path)
    now = emulator.store.now().isoformat()
    result = cli("test", str(path), "--now", now, env=warehouse_env)
    assert result.exit_code == 0, result.output
    count = len(stale_cart_ids(emulator))
    line = f"  cancel-stale-carts: matched {count}, would change {count}, lost to other rules 0"
    assert line in result.stdout
    assert emulator.counters.count(PATCH_STATUS) == 0


def test_apply_dry_run_runs_the_job_and_prints_what_would_change(
    emulator, tmp_path, warehouse_env, monkeypatch
):
    for name, value in warehouse_env.items():
        monkeypatch.setenv(name, value)
    path = write_rules(tmp_path)
    now = emulator.store.now().isoformat()
    result = cli("apply", "--dry-run", "--rules", str(path), "--now", now)
    assert result.exit_code == 0, result.output
    count = len(stale_cart_ids(emulator))
    assert f"rules (dry run): 0 applied, {count} would apply, 0 skipped, 0 failed" in result.stdout
    assert emulator.counters.count(PATCH_STATUS) == 0


def test_apply_over_the_limit_fails_with_the_reason_and_exit_1(
    emulator, tmp_path, warehouse_env, monkeypatch
):
    for name, value in warehouse_env.items():
        monkeypatch.setenv(name, value)
    path = write_rules(tmp_path)
    now = emulator.store.now().isoformat()
    result = cli("apply", "--rules", str(path), "--now", now, "--max-transitions", "1")
    assert result.exit_code == 1
    assert "stopped before any change:" in result.stderr
    assert "over the limit of 1 per run" in result.stderr
    assert emulator.counters.count(PATCH_STATUS) == 0


def test_apply_with_an_invalid_rules_file_exits_2_before_any_run(tmp_path, warehouse_env):
    path = write_rules(tmp_path, "rules: [1]\n")
    result = cli("apply", "--rules", str(path), env=warehouse_env)
    assert result.exit_code == 2
    assert f"{path}:1:9: expected a rule (a mapping), got 1" in result.stderr
    assert not (tmp_path / "dagster_home").exists()
