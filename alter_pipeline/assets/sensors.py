"""Sensors read local state only (the lake's manifest), never the API: a tick has ~60 s."""

import dagster as dg

from alter_pipeline.resources import LakeResource


def _latest_sequence(lake: LakeResource) -> int:
    snapshot = lake.lake().current()
    return int(snapshot.meta("last_sequence", 0)) if snapshot else 0


def events_sensor(name: str, job_name: str, description: str) -> dg.SensorDefinition:
    """A sensor that requests one run of `job_name` per batch of new order events.

    The cursor is the last event `sequence` handed to a run; the run key names the range, so a
    restarted daemon or a failed tick (whose cursor update is lost) re-requests the same key
    and Dagster drops the duplicate rather than skipping or repeating events.
    """

    @dg.sensor(
        name=name,
        job_name=job_name,
        minimum_interval_seconds=30,
        description=description,
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def _sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
        seen = int(context.cursor or 0)
        latest = _latest_sequence(lake)
        if latest <= seen:
            return dg.SkipReason(f"no new order events (last sequence {seen})")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"{job_name}:{seen + 1}-{latest}",
                    tags={"alter/events_from": str(seen + 1), "alter/events_to": str(latest)},
                )
            ],
            cursor=str(latest),
        )

    return _sensor
