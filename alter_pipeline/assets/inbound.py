"""Inbound events in Dagster: `inbound_events_sensor`, and the part of the rules run that
applies the event-driven rules to the inbox (alter_pipeline/rules/on_events.py does the work).

The sensor reads only the local inbox (`<lake root>/inbound/inbox.sqlite`, written by
`alter-pipeline inbound serve`): its cursor is the last inbox sequence handed to a run, and the
run key names the range (`inbound:<from>-<to>`), so a tick whose cursor update was lost asks
for the same key again and Dagster drops the duplicate. A failed event's retry falling due
requests a run too (`inbound:due:<time>`), and so do events a run left waiting
(`inbound:waiting:<sequence>`).
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg

from alter_pipeline.assets.jobs import sensor_default_status
from alter_pipeline.assets.scope import Scope, Tick, tick_each_storefront
from alter_pipeline.config import ConfigError, Settings
from alter_pipeline.inbound.inbox import Inbox
from alter_pipeline.resources import LakeResource
from alter_pipeline.rules import audit
from alter_pipeline.rules.model import RuleSet
from alter_pipeline.storefronts import Storefronts

DEFAULT_INTERVAL_S = 15


def sensor_interval() -> int:
    """Seconds between ticks (ALTER_INBOUND_SENSOR_INTERVAL, default 15): the bound on how
    long an accepted event waits before its run is requested."""
    text = os.environ.get("ALTER_INBOUND_SENSOR_INTERVAL") or str(DEFAULT_INTERVAL_S)
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"ALTER_INBOUND_SENSOR_INTERVAL must be whole seconds, got {text!r}")
    return int(text)


# ---- in the rules run ---------------------------------------------------------------------


def apply_inbound(
    context: dg.AssetExecutionContext,
    scope: Scope,
    ruleset: RuleSet,
    client: Any,
    *,
    dry_run: bool,
    max_transitions: int | None,
    now: datetime,
) -> Any:
    """Apply the event rules to the storefront's due inbox events; None when there is no
    inbox, or in a dry run (events are consumed only by a live run: they stay pending)."""
    from alter_pipeline.rules.on_events import apply_inbox_events

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
        )


def inbound_metadata(report: Any) -> dict[str, Any]:
    if report is None:
        return {}
    from alter_pipeline.rules.apply import markdown_rows

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


# ---- the sensor ---------------------------------------------------------------------------


def _seen(cursor: str | None) -> int:
    try:
        return int(cursor or 0)
    except ValueError:
        return 0  # unreadable: evaluate as on a first tick (run keys prevent repeats)


def inbound_tick(root: Path, rules_file: Path, cursor: str | None, partition: str | None) -> Tick:
    """One storefront's evaluation: a run for new inbox events, or for a retry falling due."""
    seen = _seen(cursor)
    if not Inbox.exists_under(root):
        return None, str(seen), "no inbound events yet (no inbox)"
    with Inbox.for_root(root) as inbox:
        latest, due = inbox.latest_sequence(), inbox.next_retry_at()
        waiting = inbox.oldest_waiting(time.time())
    prefix = f"inbound:{partition}:" if partition else "inbound:"
    config: dict[str, Any] = {
        "ops": {audit.TABLE: {"config": {"rules_file": str(rules_file.absolute())}}}
    }
    config["ops"][audit.TABLE]["config"]["events_only"] = True
    if latest > seen:
        request = dg.RunRequest(
            run_key=f"{prefix}{seen + 1}-{latest}",
            run_config=config,
            tags={"alter/inbound_from": str(seen + 1), "alter/inbound_to": str(latest)},
            partition_key=partition,
        )
        return request, str(latest), ""
    if due is not None and due <= time.time():
        request = dg.RunRequest(
            run_key=f"{prefix}due:{int(due)}",
            run_config=config,
            tags={"alter/trigger": "inbound retry due"},
            partition_key=partition,
        )
        return request, str(seen), ""
    if waiting is not None and waiting <= seen:
        # Handed to a run that left it (its maximum reached, stopped by the guard, crashed):
        # one more run, keyed by the oldest waiting event, so this is not asked again until
        # a run has moved past it.
        request = dg.RunRequest(
            run_key=f"{prefix}waiting:{waiting}",
            run_config=config,
            tags={"alter/trigger": "inbound events still waiting"},
            partition_key=partition,
        )
        return request, str(seen), ""
    return None, str(seen), f"no new inbound events (last sequence {seen}) and no retry due"


def make_inbound_sensor(
    storefronts: Storefronts | None = None,
    name: str = "inbound_events_sensor",
    rules_file: str | None = None,
) -> dg.SensorDefinition:
    """A sensor requesting `apply_rules_job` (inbound events only) for new inbox events."""

    @dg.sensor(
        name=name,
        job_name="apply_rules_job",
        minimum_interval_seconds=sensor_interval(),
        default_status=sensor_default_status(),
        description="Apply the event-driven rules to new verified inbound webhook events.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, lake: LakeResource
    ) -> dg.SensorResult | dg.SkipReason:
        path = Path(rules_file) if rules_file else Settings.from_env().rules_file
        if not path.is_file():
            return dg.SkipReason(f"no rules file at {path} (set ALTER_RULES_FILE)")

        def evaluate(root: Path, cursor: str | None, partition: str | None) -> Tick:
            return inbound_tick(root, path, cursor, partition)

        return tick_each_storefront(context, lake, storefronts, evaluate)

    return _sensor


inbound_events_sensor = make_inbound_sensor()
