"""The maintenance op: retention of the outbox, the rules ledger and old snapshots (run daily
by `maintenance_job`, jobs.py, on `maintenance_schedule`, schedules.py).

Its run's metadata says what it removed, per lake root (see alter_pipeline/maintenance.py).
"""

import dagster as dg

from alter_pipeline.maintenance import run_maintenance
from alter_pipeline.resources import LakeResource


@dg.op(
    name="apply_retention",
    description="Prune delivered webhook rows, finished rules-ledger transitions and "
    "snapshots beyond the ones kept, in every lake root.",
    out=dg.Out(dg.Nothing),
    tags={"kind": "maintenance"},
)
def apply_retention(context: dg.OpExecutionContext, lake: LakeResource) -> None:
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
