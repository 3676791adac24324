"""Retention (`alter-pipeline maintenance`, `maintenance_job`) on real SQLite files and a real
lake: what is old and finished goes, what anything still needs stays."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from alter_pipeline.cli import app
from alter_pipeline.config import ConfigError, Settings
from alter_pipeline.jobs import maintenance_job
from alter_pipeline.lake import Lake
from alter_pipeline.maintenance import run_maintenance
from alter_pipeline.resources import LakeResource
from alter_pipeline.rules import ledger as ledger_module
from alter_pipeline.rules.ledger import Key, Ledger
from alter_pipeline.webhooks.outbox import Outbox, QueuedEvent

DAY = 86400.0


def queued(sequence: int) -> QueuedEvent:
    return QueuedEvent(f"e{sequence}", "order.created", sequence, f"order:{sequence}", 0.0, b"{}")


def outbox_with_history(data_dir: Path, now: float) -> None:
    """e1, e2 delivered 40 days ago; e3 delivered yesterday; e4 failing, retry due later."""
    with Outbox.open(data_dir) as outbox:
        outbox.enqueue([(queued(i), ["shop"]) for i in range(1, 5)], now=now - 41 * DAY)
        claims = {c.event_id: c for c in outbox.claim(now - 40 * DAY, {"shop": 10}, {"shop": 60})}
        for event_id in ("e1", "e2"):
            outbox.record_delivered(claims[event_id], now - 40 * DAY, 204, 5.0)
        outbox.record_delivered(claims["e3"], now - DAY, 204, 5.0)
        outbox.record_failed(
            claims["e4"], now - 40 * DAY, status_code=503, latency_ms=5.0, error="503",
            retry_at=now + 60,
        )  # fmt: skip


def test_delivered_rows_past_the_retention_go_and_pending_ones_stay(tmp_path: Path) -> None:
    now = time.time()
    outbox_with_history(tmp_path, now)
    (report,) = run_maintenance(Settings(data_dir=tmp_path), now=now)
    assert report.outbox == {"deliveries": 2, "attempts": 2, "events": 2}
    with Outbox.open(tmp_path) as outbox:
        assert outbox.delivery("shop", "e1") is None
        assert outbox.delivery("shop", "e3")["state"] == "delivered"  # within 30 days
        assert outbox.delivery("shop", "e4")["state"] == "pending"  # a retry is due
        assert outbox.attempts_of("e4")


def test_the_webhook_retention_is_configurable(tmp_path: Path, monkeypatch) -> None:
    now = time.time()
    outbox_with_history(tmp_path, now)
    monkeypatch.setenv("ALTER_WEBHOOK_RETENTION_DAYS", "60")
    (report,) = run_maintenance(Settings(data_dir=tmp_path), now=now)
    assert report.outbox["deliveries"] == 0


def test_a_bad_retention_setting_is_a_one_line_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ALTER_RULES_LEDGER_RETENTION_DAYS", "soon")
    with pytest.raises(ConfigError, match="ALTER_RULES_LEDGER_RETENTION_DAYS='soon'"):
        run_maintenance(Settings(data_dir=tmp_path))


def test_finished_ledger_rows_go_but_claims_and_the_last_applied_move_stay(
    tmp_path: Path,
) -> None:
    old, latest = (
        Key(7, "complete", "paid", "completed", "v1"),
        Key(7, "complete", "paid", "completed", "v2"),
    )
    skipped, in_flight = (
        Key(8, "complete", "paid", "completed", "v1"),
        Key(9, "complete", "paid", "completed", "v2"),
    )
    with Ledger.for_data_dir(tmp_path) as ledger:
        for key in (old, latest, skipped, in_flight):
            ledger.claim([key], run_id=f"run-{key.eval_key}")
            time.sleep(0.001)  # distinct resolved_at, in this order
            if key is not in_flight:
                state = ledger_module.SKIPPED if key is skipped else ledger_module.APPLIED
                ledger.resolve(key, f"run-{key.eval_key}", state)
    (report,) = run_maintenance(Settings(data_dir=tmp_path), now=time.time() + 91 * DAY)
    assert report.ledger_transitions == 2
    with Ledger.for_data_dir(tmp_path) as ledger:
        assert {e.key for e in ledger.entries()} == {latest, in_flight}
        # The kept move still stops another rule from undoing it.
        undo = Key(7, "reopen", "completed", "paid", "v3")
        assert "would undo rule complete" in (ledger.claim([undo], "run-v3")[undo] or "")


def test_snapshots_beyond_the_kept_ones_are_removed_and_reported(tmp_path: Path) -> None:
    lake = Lake(tmp_path, keep=10)
    ids = []
    for n in range(5):
        with lake.write() as writer:
            writer.write_table("orders", pa.table({"id": [n]}))
            ids.append(writer.snapshot_id)
    (report,) = run_maintenance(Settings(data_dir=tmp_path))
    assert report.snapshots == ids[:2]  # ALTER_SNAPSHOTS_KEPT defaults to 3
    assert Lake(tmp_path).current().snapshot_id == ids[-1]


def test_the_cli_prints_what_it_removed_as_json(tmp_path: Path) -> None:
    outbox_with_history(tmp_path, time.time())
    result = CliRunner().invoke(
        app, ["maintenance", "--json"], env={"ALTER_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.output)
    assert report["outbox_removed"]["deliveries"] == 2


def test_the_maintenance_job_says_what_it_removed_in_its_metadata(tmp_path: Path) -> None:
    outbox_with_history(tmp_path, time.time())
    result = maintenance_job.execute_in_process(
        resources={"lake": LakeResource(data_dir=str(tmp_path))}
    )
    (output,) = [e for e in result.all_node_events if e.is_successful_output]
    metadata = {k: v.value for k, v in output.step_output_data.metadata.items()}
    assert metadata["outbox_deliveries_removed"] == 2 and metadata["roots"] == 1
