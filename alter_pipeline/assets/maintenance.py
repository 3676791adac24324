"""The maintenance job: retention of the outbox, the rules ledger and old snapshots, daily.

Its run's metadata says what it removed, per lake root (see alter_pipeline/maintenance.py).
"""

import os

import dagster as dg

from alter_pipeline.assets.jobs import automation_running
from alter_pipeline.resources import LakeResource


@dg.op(
    name="apply_retention",
    description="Prune delivered webhook rows, finished rules-ledger transitions and "
    "snapshots beyond the ones kept, in every lake root.",
    out=dg.Out(dg.Nothing),
    tags={"kind": "maintenance"},
)
def apply_retention(context: dg.OpExecutionContext, lake: LakeResource) -> None:
    from alter_pipeline.maintenance import run_maintenance

    reports = run_maintenance(lake.settings())
    metadata: dict[str, dg.RawMetadataValue] = {
        "roots": len(reports),
        "outbox_deliveries_removed": sum(r.outbox.get("deliveries", 0) for r in reports),
        "ledger_transitions_removed": sum(r.ledger_transitions for r in reports),
        "snapshots_removed": sum(len(r.snapshots) for r in reports),
        "details": dg.MetadataValue.json([r.as_dict() for r in reports]),
    }
    context.log.info(
        f"removed {metadata['outbox_deliveries_removed']} delivered webhook rows, "
        f"{metadata['ledger_transitions_removed']} ledger transitions, "
        f"{metadata['snapshots_removed']} snapshots"
    )
    context.add_output_metadata(metadata)


@dg.job(
    name="maintenance_job",
    description="Retention: forget what is no longer needed (alter-pipeline maintenance).",
    executor_def=dg.in_process_executor,
)
def maintenance_job() -> None:
    apply_retention()


maintenance_schedule = dg.ScheduleDefinition(
    name="maintenance_schedule",
    job=maintenance_job,
    cron_schedule=os.environ.get("ALTER_MAINTENANCE_CRON", "15 4 * * *"),
    default_status=(
        dg.DefaultScheduleStatus.RUNNING
        if automation_running()
        else dg.DefaultScheduleStatus.STOPPED
    ),
    description="Retention daily at 04:15 UTC by default (ALTER_MAINTENANCE_CRON).",
)
