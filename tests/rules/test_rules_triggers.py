"""Event-driven rules (`on:` + `order_id:`): checked like the others, never run on a schedule,
explained on an event file by `rules test --event`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from rules_helpers import PATCH_STATUS, rules, sync_lake
from typer.testing import CliRunner

from alter_pipeline.cli.rules import rules_app
from alter_pipeline.lake import Lake
from alter_pipeline.rules.apply import apply_rules

app = typer.Typer()
app.add_typer(rules_app, name="rules")
RULE = """\
rules:
  - id: paid-on-checkout
    on: {source: stripe, type: checkout.session.completed}
    order_id: data.object.metadata.alter_order_id
    when: {status: {in: [processing]}}
    then: {set_status: paid}
"""
INBOUND = "sources:\n  - {id: stripe, path: /hooks/stripe, kind: stripe, secret_env: S}\n"


def cli(*args: str, env: dict[str, str]):
    return CliRunner(env=env).invoke(app, ["rules", *args])


def checkout(tmp_path: Path, order_id: int) -> Path:
    event = {
        "id": "evt_1",
        "type": "checkout.session.completed",
        "data": {"object": {"metadata": {"alter_order_id": str(order_id)}}},
    }
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "inbound.yaml").write_text(INBOUND)
    (tmp_path / "rules.yaml").write_text(RULE)
    return {"ALTER_INBOUND_FILE": str(tmp_path / "inbound.yaml"), "rules": tmp_path / "rules.yaml"}


def test_check_reports_unknown_source_bad_path_and_forbidden_move_with_positions(files):
    text = RULE.replace("source: stripe", "source: strip").replace(".metadata.", ".metadata..")
    second = RULE.replace("paid-on-checkout", "second").replace("[processing]", "[completed]")
    text += second.removeprefix("rules:\n")
    files["rules"].write_text(text)
    result = cli(
        "check", str(files["rules"]), env={"ALTER_INBOUND_FILE": files["ALTER_INBOUND_FILE"]}
    )
    assert result.exit_code == 2
    path = files["rules"]
    assert result.stderr.splitlines() == [
        f"{path}:3:18: unknown source 'strip' (inbound.yaml defines: stripe)",
        f"{path}:4:15: bad order_id path 'data.object.metadata..alter_order_id': expected "
        "names separated by dots, e.g. data.object.metadata.alter_order_id",
        f"{path}:11:24: rule 'second': moving completed to paid is not allowed (completed may "
        "move to nothing (final)); restrict `status` in `when`, or allow the move under "
        "`transitions:`",
        f"3 problems in {path}",
    ]


def test_check_of_a_valid_event_rule_shows_its_trigger(files):
    result = cli(
        "check", str(files["rules"]), env={"ALTER_INBOUND_FILE": files["ALTER_INBOUND_FILE"]}
    )
    assert result.exit_code == 0, result.output
    assert (
        "on stripe checkout.session.completed, order id at data.object.metadata." in result.stdout
    )
    assert "1 rules (1 enabled, 1 on inbound events)" in result.stdout


def test_an_event_rule_is_never_applied_over_the_warehouse(emulator, client, tmp_path):
    order_id = emulator.store.order_ids(["shopping_cart"])[0]
    emulator.store.set_status(order_id, "processing")
    lake = sync_lake(emulator, tmp_path)
    report = apply_rules(client, lake, rules(RULE), run_id="r1", refresh=None)
    assert report.rows == [] and emulator.counters.count(PATCH_STATUS) == 0


@pytest.fixture
def warehouse_env(emulator: Any, tmp_path: Path, files: dict[str, Any]) -> dict[str, str]:
    order_id = emulator.store.order_ids(["shopping_cart"])[0]
    emulator.store.set_status(order_id, "processing")
    sync_lake(emulator, tmp_path / "data")
    files["order_id"] = order_id
    return {
        "ALTER_DATA_DIR": str(tmp_path / "data"),
        "ALTER_API_BASE_URL": emulator.base_url,
        "ALTER_API_KEY": emulator.key,
        "ALTER_API_TOKEN": emulator.token,
    }


def test_test_with_an_event_explains_the_rule_the_order_and_the_move(
    files, warehouse_env, tmp_path
):
    order_id = files["order_id"]
    event = checkout(tmp_path, order_id)
    result = cli("test", str(files["rules"]), "--event", str(event), env=warehouse_env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "event evt_1: source stripe, type checkout.session.completed"
    assert lines[1].startswith("  TRIGGERED paid-on-checkout: on stripe checkout.session.comp")
    assert lines[-1] == f"  → paid-on-checkout would move order {order_id} from processing to paid"


def test_test_with_an_event_for_an_unknown_order_says_it_would_be_skipped(
    files, warehouse_env, tmp_path
):
    event = checkout(tmp_path, 987654)
    result = cli("test", str(files["rules"]), "--event", str(event), env=warehouse_env)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "  → skipped: unknown order 987654 (not found)"
    assert Lake(Path(warehouse_env["ALTER_DATA_DIR"])).current() is not None
