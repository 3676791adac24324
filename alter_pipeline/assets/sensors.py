"""Sensors read local state only (the lake's manifest, the webhook outbox), never the API:
a tick has about 60 s."""

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from alter_pipeline.assets.jobs import sensor_default_status
from alter_pipeline.assets.scope import Tick, tick_each_storefront
from alter_pipeline.config import Settings
from alter_pipeline.lake.locate import open_lake
from alter_pipeline.resources import LakeResource
from alter_pipeline.storefronts import Storefronts


def _latest_sequence(root: Path) -> int:
    snapshot = open_lake(root).current()
    return int(snapshot.meta("last_sequence", 0)) if snapshot else 0


def _retry_due_at(root: Path) -> datetime | None:
    """When the webhook outbox's next retry falls due, if one is due by now."""
    from alter_pipeline.webhooks import pending_work

    settings = dataclasses.replace(Settings.from_env(dotenv=False), data_dir=root)
    if not settings.webhooks_file.is_file():
        return None
    work = pending_work(settings)
    due = work.next_due_at
    return due if due is not None and due <= datetime.now(UTC) else None


def events_sensor(
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
