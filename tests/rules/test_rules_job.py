"""apply_rules_job and rules_sensor in Dagster, in-process."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
from rules_helpers import PATCH_STATUS, sync_lake
from test_rules_apply import STALE_CARTS, stale_cart_ids

from alter_pipeline.assets.rules import build_status_transitions
from alter_pipeline.events import schema as ev
from alter_pipeline.jobs import apply_rules_job
from alter_pipeline.lake import Lake
from alter_pipeline.resources import AlterApiResource, LakeResource
from alter_pipeline.sensors import build_rules_sensor


def resources(emulator: Any, data_dir: Path) -> dict[str, Any]:
    return {
        "alter_api": AlterApiResource(
            base_url=emulator.base_url, api_key=emulator.key, api_token=emulator.token
        ),
        "lake": LakeResource(data_dir=str(data_dir)),
    }


def definitions(emulator: Any, data_dir: Path) -> dg.Definitions:
    return dg.Definitions(
        assets=[build_status_transitions()],
        jobs=[apply_rules_job],
        sensors=[build_rules_sensor()],
        resources=resources(emulator, data_dir),
    )


def run_job(emulator: Any, data_dir: Path, rules_file: Path, **config: Any):
    config = {"rules_file": str(rules_file), "now": emulator.store.now().isoformat(), **config}
    job = definitions(emulator, data_dir).resolve_job_def("apply_rules_job")
    return job.execute_in_process(
        run_config={"ops": {"status_transitions": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def metadata(result) -> dict[str, Any]:
    (materialization,) = result.asset_materializations_for_node("status_transitions")
    return {key: value.value for key, value in materialization.metadata.items()}


def write_rules(tmp_path: Path, text: str = STALE_CARTS) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_the_job_applies_the_rules_and_shows_every_change_in_its_metadata(emulator, tmp_path):
    sync_lake(emulator, tmp_path)
    expected = stale_cart_ids(emulator)
    result = run_job(emulator, tmp_path, write_rules(tmp_path))
    assert result.success
    meta = metadata(result)
    assert (meta["applied"], meta["failed"], meta["dry_run"]) == (len(expected), 0, False)
    table = meta["changes"].splitlines()
    assert table[0] == "| order | rule | from | to | outcome | detail |"
    assert [int(line.split("|")[1]) for line in table[2:]] == expected
    assert all("| cancel-stale-carts |" in line and "| applied |" in line for line in table[2:])
    assert emulator.counters.count(PATCH_STATUS) == len(expected)


def test_the_job_refreshes_the_changed_orders_so_their_events_follow_at_once(emulator, tmp_path):
    sync_lake(emulator, tmp_path)
    expected = stale_cart_ids(emulator)
    result = run_job(emulator, tmp_path, write_rules(tmp_path))
    assert metadata(result)["refresh"] == f"refreshed {len(expected)} orders"


def test_a_dry_run_job_records_what_would_happen_and_changes_nothing(emulator, tmp_path):
    sync_lake(emulator, tmp_path)
    result = run_job(emulator, tmp_path, write_rules(tmp_path), dry_run=True)
    meta = metadata(result)
    assert result.success and meta["applied"] == 0
    assert meta["would_apply"] == len(stale_cart_ids(emulator)) > 0
    assert emulator.counters.count(PATCH_STATUS) == 0


def test_the_job_stays_green_when_an_order_was_deleted_and_applies_the_rest(emulator, tmp_path):
    sync_lake(emulator, tmp_path)
    gone, *rest = stale_cart_ids(emulator)
    emulator.store.delete_order(gone)
    result = run_job(emulator, tmp_path, write_rules(tmp_path))
    assert result.success
    assert metadata(result)["applied"] == len(rest)
    assert metadata(result)["skipped"] >= 1


def test_the_job_stops_on_the_blast_radius_guard_unless_raised_by_config(emulator, tmp_path):
    sync_lake(emulator, tmp_path)
    rules = write_rules(tmp_path, STALE_CARTS.replace("per_run: 500", "per_run: 2"))
    stopped = run_job(emulator, tmp_path, rules)
    assert not stopped.success and emulator.counters.count(PATCH_STATUS) == 0
    (failure,) = [e for e in stopped.all_events if e.is_step_failure]
    assert "stopped before any change" in failure.step_failure_data.error.message
    raised = run_job(emulator, tmp_path, rules, max_transitions=1000)
    assert raised.success and metadata(raised)["applied"] > 2


def test_an_invalid_rules_file_fails_the_job_with_every_problem(emulator, tmp_path):
    sync_lake(emulator, tmp_path)
    rules = write_rules(tmp_path, STALE_CARTS.replace("age:", "agee:").replace("30d}", "30x}"))
    result = run_job(emulator, tmp_path, rules)
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "rules.yaml:6:7: unknown field 'agee'" in message
    assert "rules.yaml:7:18: idle: not a duration: '30x'" in message
    assert emulator.counters.count() == 0


# ---- sensor ---------------------------------------------------------------------------------


def tick(data_dir: Path, rules_file: Path, cursor: str | None):
    sensor = build_rules_sensor(str(rules_file), name="test_rules_sensor")
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=dg.DagsterInstance.ephemeral(),
        resources={"lake": LakeResource(data_dir=str(data_dir))},  # no API: local state only
    )
    return sensor.evaluate_tick(context)


def add_events(lake: Lake, sequences: list[int], order_id: int | None = 7) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "event_id": f"e{n}",
            "event_type": ev.ORDER_CREATED if order_id else ev.PRODUCT_CREATED,
            "order_id": order_id,
            "product_id": None if order_id else 3,
            "detected_at": now,
            "sequence": n,
            "snapshot_id": "s",
            "payload": "{}",
        }
        for n in sequences
    ]
    with lake.write() as writer:
        writer.carry_over(ev.ORDER_EVENTS_TABLE)
        writer.table(ev.ORDER_EVENTS_TABLE, ev.ORDER_EVENTS, f"date={now:%Y-%m-%d}").write(
            pa.Table.from_pylist(rows, schema=ev.ORDER_EVENTS)
        )


def test_the_sensor_runs_new_rules_once_then_skips_saying_why(emulator, tmp_path):
    sync_lake(emulator, tmp_path)
    rules = write_rules(tmp_path)
    first = tick(tmp_path, rules, None)
    (request,) = first.run_requests
    assert request.run_key.startswith("rules:0:")
    assert request.run_config == {
        "ops": {"status_transitions": {"config": {"rules_file": str(rules.absolute())}}}
    }
    assert json.loads(first.cursor)["sequence"] == 0
    quiet = tick(tmp_path, rules, first.cursor)
    assert quiet.run_requests == []
    assert quiet.skip_message == "no new order events since sequence 0, and rules.yaml is unchanged"


def test_the_sensor_requests_a_run_when_the_rules_file_changes(emulator, tmp_path):
    sync_lake(emulator, tmp_path)
    rules = write_rules(tmp_path)
    first = tick(tmp_path, rules, None)
    write_rules(tmp_path, STALE_CARTS.replace("30d", "60d"))
    changed = tick(tmp_path, rules, first.cursor)
    (request,) = changed.run_requests
    assert request.run_key != first.run_requests[0].run_key
    assert request.tags["alter/trigger"] == "rules file changed"


def test_the_sensor_requests_a_run_for_new_order_events_keyed_by_their_sequence(emulator, tmp_path):
    lake = sync_lake(emulator, tmp_path)
    rules = write_rules(tmp_path)
    first = tick(tmp_path, rules, None)
    add_events(lake, [1, 2, 3])
    add_events(lake, [4], order_id=None)  # a product event does not concern the rules
    later = tick(tmp_path, rules, first.cursor)
    (request,) = later.run_requests
    assert request.run_key.startswith("rules:3:")
    assert request.tags["alter/trigger"] == "new order events"
    assert tick(tmp_path, rules, later.cursor).run_requests == []
    lost_cursor = tick(tmp_path, rules, first.cursor)  # a tick whose cursor was not saved
    assert lost_cursor.run_requests[0].run_key == request.run_key  # Dagster drops the repeat


def test_the_sensor_skips_an_invalid_rules_file_and_says_where(emulator, tmp_path):
    sync_lake(emulator, tmp_path)
    rules = write_rules(tmp_path, STALE_CARTS.replace("cancelled", "canceled"))
    result = tick(tmp_path, rules, None)
    assert result.run_requests == []
    assert "rules.yaml:8:24: unknown status 'canceled'" in result.skip_message


def test_the_sensor_waits_for_a_rules_file_and_a_first_sync(tmp_path):
    missing = tick(tmp_path, tmp_path / "rules.yaml", None)
    assert missing.skip_message.startswith(f"no rules file at {tmp_path / 'rules.yaml'}")
    no_lake = tick(tmp_path, write_rules(tmp_path), None)
    assert no_lake.skip_message == "the lake has no snapshot yet: waiting for the first sync"
