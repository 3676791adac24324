"""Sensors read local state only (the lake's manifest, the webhook outbox), never the API:
a tick has about 60 s."""

import dataclasses
from datetime import UTC, datetime

import dagster as dg

from alter_pipeline.assets.jobs import sensor_default_status
from alter_pipeline.config import Settings
from alter_pipeline.resources import LakeResource


def _latest_sequence(lake: LakeResource) -> int:
    snapshot = lake.lake().current()
    return int(snapshot.meta("last_sequence", 0)) if snapshot else 0


def _retry_due_at(lake: LakeResource) -> datetime | None:
    """When the webhook outbox's next retry falls due, if one is due by now."""
    from alter_pipeline.webhooks import pending_work

    settings = dataclasses.replace(Settings.from_env(dotenv=False), data_dir=lake.path())
    if not settings.webhooks_file.is_file():
        return None
    work = pending_work(settings)
    due = work.next_due_at
    return due if due is not None and due <= datetime.now(UTC) else None


def events_sensor(name: str, job_name: str, description: str) -> dg.SensorDefinition:
    """A sensor that requests one run of `job_name` per batch of new order events, and one
    when a webhook retry falls due.

    The cursor is the last event `sequence` handed to a run; run keys name the event range (or
    the retry's due time), so a restarted daemon or a failed tick (whose cursor update is lost)
    re-requests the same key and Dagster drops the duplicate rather than skipping or repeating.
    """

    @dg.sensor(
        name=name,
        job_name=job_name,
        minimum_interval_seconds=30,
        description=description,
        default_status=sensor_default_status(),
    )
    def _sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
        seen = int(context.cursor or 0)
        latest = _latest_sequence(lake)
        if latest > seen:
            request = dg.RunRequest(
                run_key=f"{job_name}:{seen + 1}-{latest}",
                tags={"alter/events_from": str(seen + 1), "alter/events_to": str(latest)},
            )
            return dg.SensorResult(run_requests=[request], cursor=str(latest))
        due = _retry_due_at(lake)
        if due is not None:
            request = dg.RunRequest(
                run_key=f"{job_name}:due:{int(due.timestamp())}",
                tags={"alter/trigger": "webhook retry due"},
            )
            return dg.SensorResult(run_requests=[request], cursor=str(seen))
        return dg.SkipReason(f"no new order events (last sequence {seen}) and no retry due")

    return _sensor
