"""Retention: what a deployment forgets, and when (`alter-pipeline maintenance`).

Run daily (the `maintenance_job` schedule does) or by hand. For every lake root under
ALTER_DATA_DIR (the single storefront's, or each storefront's):

* **webhook outbox**: delivered rows, their attempt log and the bodies no row refers to any
  more, once delivered longer ago than `ALTER_WEBHOOK_RETENTION_DAYS` (30). Pending rows (a
  retry is due) and dead ones (for `webhooks replay`) stay whatever their age. The delivery
  job prunes the same way before each run.
* **rules ledger**: finished transitions (applied, skipped, failed) resolved longer ago than
  `ALTER_RULES_LEDGER_RETENTION_DAYS` (90). Claims in flight stay, and so does the newest
  applied transition of each order, rule, from and to (a rule must never undo another's
  change, however long ago it was made).
* **snapshots**: beyond the `ALTER_SNAPSHOTS_KEPT` (3) most recent, and temporaries left by
  killed processes (a commit does the same; this covers a lake nobody writes to any more).

Nothing here touches the lake's tables: `order_events` and `status_transitions` are the
history, kept (and compacted, see lake/compaction.py). The webhook cursor is a sequence into
that table, so no snapshot or outbox row is needed to keep it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from alter_pipeline.config import Settings, retention_days
from alter_pipeline.lake.snapshot import lake_at
from alter_pipeline.rules.ledger import LEDGER_FILE, Ledger
from alter_pipeline.storefronts import storefront_roots
from alter_pipeline.webhooks.delivery import delivered_retention
from alter_pipeline.webhooks.outbox import Outbox, outbox_path

LEDGER_RETENTION_ENV = "ALTER_RULES_LEDGER_RETENTION_DAYS"
LEDGER_RETENTION = timedelta(days=90)


def ledger_retention() -> timedelta:
    default = LEDGER_RETENTION.total_seconds() / 86400
    return timedelta(days=retention_days(LEDGER_RETENTION_ENV, default))


@dataclass
class RootReport:
    """What maintenance removed under one lake root."""

    root: str
    outbox: dict[str, int] = field(default_factory=dict)
    ledger_transitions: int = 0
    snapshots: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "outbox_removed": self.outbox,
            "ledger_transitions_removed": self.ledger_transitions,
            "snapshots_removed": self.snapshots,
        }


def run_maintenance(settings: Settings, *, now: float | None = None) -> list[RootReport]:
    """Apply the retention rules to every lake root under `settings.data_dir`."""
    now = time.time() if now is None else now
    delivered_before = now - delivered_retention().total_seconds()
    ledger_before = now - ledger_retention().total_seconds()
    reports = []
    for root in _roots(settings.data_dir):
        report = RootReport(str(root))
        if outbox_path(root).is_file():
            with Outbox.open(root) as outbox:
                report.outbox = outbox.prune(delivered_before)
        if (root / LEDGER_FILE).is_file():
            with Ledger.for_data_dir(root) as ledger:
                report.ledger_transitions = ledger.prune(ledger_before)
        if (root / "snapshots").is_dir():
            report.snapshots = lake_at(settings.data_dir, settings.lake_url, root).tidy()
        reports.append(report)
    return reports


def _roots(data_dir: Path) -> list[Path]:
    # A root that has an outbox or a ledger but no lake yet (webhooks set up before the
    # first sync) counts too.
    roots = storefront_roots(data_dir)
    if data_dir not in roots and (
        outbox_path(data_dir).is_file() or (data_dir / LEDGER_FILE).is_file()
    ):
        roots.insert(0, data_dir)
    return roots
