"""Inbound events in Dagster: the part of the rules run that applies the event-driven rules
to the inbox (alter_pipeline/rules/on_events.py does the work). `inbound_events_sensor`
(sensors.py) requests those runs from the local inbox that `alter-pipeline inbound serve` fills.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import dagster as dg

from alter_pipeline.assets.scope import Scope
from alter_pipeline.inbound.inbox import Inbox
from alter_pipeline.rules.apply import RulesClient, markdown_rows
from alter_pipeline.rules.model import RuleSet
from alter_pipeline.rules.on_events import EventRunReport, apply_inbox_events
from alter_pipeline.sync import refresh_orders


def apply_inbound(
    context: dg.AssetExecutionContext,
    scope: Scope,
    ruleset: RuleSet,
    client: RulesClient,
    *,
    dry_run: bool,
    max_transitions: int | None,
    now: datetime,
) -> EventRunReport | None:
    """Apply the event rules to the storefront's due inbox events; None when there is no
    inbox, or in a dry run (events are consumed only by a live run: they stay pending)."""
    root = scope.root()
    if dry_run or not Inbox.exists_under(root):
        return None
    with Inbox.for_root(root) as inbox:
        return apply_inbox_events(
            client,
            scope.lake(),
            ruleset,
            inbox,
            run_id=context.run.run_id,
            now=now,
            max_transitions=max_transitions,
            logger=context.log,
            refresh=refresh_orders,
        )


def inbound_metadata(report: EventRunReport | None) -> dict[str, Any]:
    if report is None:
        return {}
    counts = report.counts()
    return {
        **{f"inbound_{k}": v for k, v in counts.items()},
        "inbound_changes": dg.MetadataValue.md(markdown_rows(report.rows, limit=200)),
        "inbound_outcomes": dg.MetadataValue.json(
            [
                {
                    "sequence": o.sequence,
                    "source": o.source,
                    "event_id": o.event_id,
                    "state": o.state,
                    "order_id": o.order_id,
                    "detail": o.detail,
                }
                for o in report.outcomes[:200]
            ]
        ),
        "inbound_refresh": report.refresh,
    }
