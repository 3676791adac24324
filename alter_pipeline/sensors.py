"""Every sensor of the code location. They read local state only (the lake's manifest and
event table, the webhook outbox, the inbound inbox, the rules file), never the API: a tick has
about 60 s. Each keeps a cursor and names its run keys after what a run covers, so a tick whose
cursor update was lost asks for the same key again and Dagster drops the duplicate. Sensor
names and run-key formats never change: run history and the UI know them.
"""

import dataclasses
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from alter_pipeline.assets.groups import ANALYTICS_GROUP
from alter_pipeline.assets.rules import ASSET as RULES_ASSET
from alter_pipeline.assets.rules import rules_path
from alter_pipeline.assets.scope import Tick, tick_each_storefront
from alter_pipeline.config import ConfigError, Settings
from alter_pipeline.events.read import latest_order_event
from alter_pipeline.inbound.inbox import Inbox
from alter_pipeline.jobs import apply_rules_job
from alter_pipeline.lake import Snapshot
from alter_pipeline.lake.locate import open_lake
from alter_pipeline.resources import LakeResource
from alter_pipeline.rules.parse import RulesError, content_hash, parse_rules
from alter_pipeline.schedules import automation_running
from alter_pipeline.storefronts import Storefronts
from alter_pipeline.webhooks import pending_work


def sensor_default_status() -> dg.DefaultSensorStatus:
    return (
        dg.DefaultSensorStatus.RUNNING if automation_running() else dg.DefaultSensorStatus.STOPPED
    )


# ---- order events -> webhooks ---------------------------------------------------------------


def _latest_sequence(root: Path) -> int:
    snapshot = open_lake(root).current()
    return int(snapshot.meta("last_sequence", 0)) if snapshot else 0


def _retry_due_at(root: Path) -> datetime | None:
    """When the webhook outbox's next retry falls due, if one is due by now."""
    settings = dataclasses.replace(Settings.from_env(dotenv=False), data_dir=root)
    if not settings.webhooks_file.is_file():
        return None
    work = pending_work(settings)
    due = work.next_due_at
    return due if due is not None and due <= datetime.now(UTC) else None


def build_events_sensor(
    name: str, job_name: str, description: str, storefronts: Storefronts | None = None
) -> dg.SensorDefinition:
    """A sensor that requests one run of `job_name` per batch of new order events, and one
    when a webhook retry falls due (per storefront, when there are several).

    The cursor is the last event `sequence` handed to a run; run keys name the event range (or
    the retry's due time), so a restarted daemon or a failed tick (whose cursor update is lost)
    re-requests the same key and Dagster drops the duplicate rather than skipping or repeating.
    """

    def evaluate(root: Path, cursor: str | None, partition: str | None) -> Tick:
        seen = int(cursor or 0)
        latest = _latest_sequence(root)
        key = f"{job_name}:{partition}" if partition else job_name
        if latest > seen:
            request = dg.RunRequest(
                run_key=f"{key}:{seen + 1}-{latest}",
                tags={"alter/events_from": str(seen + 1), "alter/events_to": str(latest)},
                partition_key=partition,
            )
            return request, str(latest), ""
        due = _retry_due_at(root)
        if due is not None:
            request = dg.RunRequest(
                run_key=f"{key}:due:{int(due.timestamp())}",
                tags={"alter/trigger": "webhook retry due"},
                partition_key=partition,
            )
            return request, str(seen), ""
        return None, str(seen), f"no new order events (last sequence {seen}) and no retry due"

    @dg.sensor(
        name=name,
        job_name=job_name,
        minimum_interval_seconds=30,
        description=description,
        default_status=sensor_default_status(),
    )
    def _sensor(
        context: dg.SensorEvaluationContext, lake: LakeResource
    ) -> dg.SensorResult | dg.SkipReason:
        return tick_each_storefront(context, lake, storefronts, evaluate)

    return _sensor


# ---- rules ---------------------------------------------------------------------------------


def _cursor(text: str | None) -> tuple[int, str]:
    try:
        data = json.loads(text) if text else {}
        return int(data.get("sequence", 0)), str(data.get("rules", ""))
    except (ValueError, TypeError, AttributeError):
        return 0, ""  # an unreadable cursor: evaluate as on a first tick


def build_rules_sensor(
    rules_file: str | None = None,
    name: str = "rules_sensor",
    storefronts: Storefronts | None = None,
) -> dg.SensorDefinition:
    """A sensor requesting `apply_rules_job` when order events arrive or the rules change
    (per storefront, when there are several).

    Reads local state only: the rules file and the lake (never the API). The run key names the
    event sequence and the rules' content hash it covers, so a tick whose cursor update was lost
    asks for the same key again and Dagster drops the duplicate.
    """

    @dg.sensor(
        name=name,
        job=apply_rules_job,
        minimum_interval_seconds=60,
        default_status=sensor_default_status(),
        description="Apply the status rules after new order events or a rules file change.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, lake: LakeResource
    ) -> dg.SensorResult | dg.SkipReason:
        path = rules_path(rules_file)
        if not path.is_file():
            return dg.SkipReason(f"no rules file at {path} (set ALTER_RULES_FILE)")
        text = path.read_text("utf-8")
        try:
            ruleset = parse_rules(text, source=str(path))
        except RulesError as error:
            return dg.SkipReason(f"{path} is invalid, fix it first: {error}")
        if not ruleset.enabled:
            return dg.SkipReason(f"{path} has no enabled rule")

        def evaluate(root: Path, cursor: str | None, partition: str | None) -> Tick:
            snapshot = open_lake(root).current()
            return _rules_tick(path, content_hash(text), snapshot, cursor, partition)

        return tick_each_storefront(context, lake, storefronts, evaluate)

    return _sensor


def _rules_tick(
    path: Path, digest: str, snapshot: Snapshot | None, cursor: str | None, partition: str | None
) -> Tick:
    if snapshot is None:
        return None, cursor or "", "the lake has no snapshot yet: waiting for the first sync"
    sequence = latest_order_event(snapshot)
    seen, seen_rules = _cursor(cursor)
    new_events, changed = sequence > seen, digest != seen_rules
    if not new_events and not changed:
        reason = f"no new order events since sequence {seen}, and {path.name} is unchanged"
        return None, cursor or "", reason
    trigger = "new order events" if new_events else "rules file changed"
    if new_events and changed:
        trigger = "new order events and a rules file change"
    prefix = f"{partition}:" if partition else ""
    request = dg.RunRequest(
        run_key=f"rules:{prefix}{sequence}:{digest[:16]}",
        run_config={"ops": {RULES_ASSET: {"config": {"rules_file": str(path.absolute())}}}},
        tags={
            "alter/rules_hash": digest[:16],
            "alter/events_to": str(sequence),
            "alter/trigger": trigger,
        },
        partition_key=partition,
    )
    return request, json.dumps({"sequence": sequence, "rules": digest}), ""


# ---- inbound events -> rules ----------------------------------------------------------------
# The inbound sensor reads only the local inbox (`<lake root>/inbound/inbox.sqlite`): its cursor
# is the last inbox sequence handed to a run, the run key names the range (`inbound:<from>-<to>`);
# a failed event's retry falling due requests a run too (`inbound:due:<time>`), and so do events
# a run left waiting (`inbound:waiting:<sequence>`).

DEFAULT_INTERVAL_S = 15


def sensor_interval() -> int:
    """Seconds between ticks (ALTER_INBOUND_SENSOR_INTERVAL, default 15): the bound on how
    long an accepted event waits before its run is requested."""
    text = os.environ.get("ALTER_INBOUND_SENSOR_INTERVAL") or str(DEFAULT_INTERVAL_S)
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"ALTER_INBOUND_SENSOR_INTERVAL must be whole seconds, got {text!r}")
    return int(text)


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
        "ops": {RULES_ASSET: {"config": {"rules_file": str(rules_file.absolute())}}}
    }
    config["ops"][RULES_ASSET]["config"]["events_only"] = True
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


def build_inbound_sensor(
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


# ---- analytics -----------------------------------------------------------------------------


def build_analytics_automation(
    selection: dg.AssetSelection = dg.AssetSelection.groups(ANALYTICS_GROUP),
) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the dbt models' automation conditions every 30 s: a sync that changed data
    is followed by a refresh within a minute."""
    return dg.AutomationConditionSensorDefinition(
        "analytics_automation_sensor",
        target=selection,
        default_status=sensor_default_status(),
        minimum_interval_seconds=30,
        description="Refreshes the dbt models after a sync changed the lake tables they read.",
    )
