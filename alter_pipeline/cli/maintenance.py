"""`alter-pipeline maintenance`: the retention rules, in every lake root."""

from __future__ import annotations

import json

import typer

from alter_pipeline.cli.base import console, guarded, settings


def maintenance(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Apply the retention rules: forget delivered webhook rows (ALTER_WEBHOOK_RETENTION_DAYS,
    30), finished rules-ledger transitions (ALTER_RULES_LEDGER_RETENTION_DAYS, 90) and
    snapshots beyond ALTER_SNAPSHOTS_KEPT (3), in every lake root. Never a pending delivery,
    a claim in flight or the history tables."""

    def run() -> None:
        # 0.5 s to import (python -X importtime): only `maintenance` needs it
        from alter_pipeline.maintenance import run_maintenance

        reports = run_maintenance(settings())
        if as_json:
            print(json.dumps([r.as_dict() for r in reports], indent=2))
            return
        if not reports:
            console.print("nothing to maintain: no lake, outbox or ledger yet")
        for report in reports:
            outbox = report.outbox
            console.print(
                f"{report.root}: {outbox.get('deliveries', 0)} delivered webhook rows "
                f"({outbox.get('attempts', 0)} attempts, {outbox.get('events', 0)} bodies), "
                f"{report.ledger_transitions} ledger transitions, "
                f"{len(report.snapshots)} snapshots removed",
                highlight=False,
            )

    guarded(run)
