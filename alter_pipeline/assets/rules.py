"""Status rules in Dagster: the `status_transitions` asset (one rules run, its audit rows).
`apply_rules_job` (jobs.py) runs it; `rules_sensor` (sensors.py) requests that job when new
order events arrive or the rules file changes.

The work itself is plain Python in alter_pipeline/rules/apply.py; this module turns its report
into materialization metadata and its refusals into `dg.Failure`s with one clear reason, and
hands it the sync's `refresh_orders`, so the changed orders' events follow at once.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from alter_pipeline.api.errors import MissingScopeError
from alter_pipeline.assets.inbound import apply_inbound, inbound_metadata
from alter_pipeline.assets.scope import Scope, scope_of
from alter_pipeline.config import Settings
from alter_pipeline.contract.fields import as_utc
from alter_pipeline.resources import AlterApiResource, LakeResource
from alter_pipeline.rules import audit
from alter_pipeline.rules.apply import BlastRadiusError, Plan, RunReport, apply_rules, markdown_rows
from alter_pipeline.rules.data import NoDataError
from alter_pipeline.rules.parse import RulesError, load_rules
from alter_pipeline.sync import refresh_orders

RULES_GROUP = "rules"
OWNERS = ["team:operations"]
ASSET = audit.TABLE  # "status_transitions"


class RulesRunConfig(dg.Config):
    dry_run: bool = Field(default=False, description="Record what would happen; change nothing.")
    max_transitions: int | None = Field(
        default=None, description="Raise (or lower) the file's max_transitions_per_run."
    )
    rules_file: str | None = Field(default=None, description="Default: $ALTER_RULES_FILE.")
    now: str | None = Field(
        default=None, description="ISO time the rules' `age` and `idle` count from (default: now)."
    )
    concurrency: int = Field(default=4, ge=1, le=16, description="PATCHes in flight.")
    events_only: bool = Field(
        default=False,
        description="Only apply the event-driven rules to the pending inbound events (what "
        "inbound_events_sensor requests); otherwise a run does both.",
    )


def rules_path(configured: str | None = None) -> Path:
    return Path(configured) if configured else Settings.from_env().rules_file


def _now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise dg.Failure(f"config `now` is not an ISO timestamp: {text!r}") from None
    return as_utc(value)


def build_status_transitions(
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.AssetsDefinition:
    @dg.asset(
        name=ASSET,
        deps=["orders", "order_items"],
        group_name=RULES_GROUP,
        owners=OWNERS,
        kinds={"parquet"},
        partitions_def=partitions_def,
        description="Audit of status changes made by the rules ($ALTER_RULES_FILE): one row "
        "per order a rule applied, skipped, failed or (dry run) would have applied.",
    )
    def status_transitions(
        context: dg.AssetExecutionContext,
        config: RulesRunConfig,
        alter_api: AlterApiResource,
        lake: LakeResource,
    ) -> Iterator[dg.MaterializeResult]:
        """Evaluate the rules over the current snapshot and apply their status changes."""
        yield from _apply(context, config, scope_of(context, lake, alter_api))

    return status_transitions


def _apply(
    context: dg.AssetExecutionContext, config: RulesRunConfig, scope: Scope
) -> Iterator[dg.MaterializeResult]:
    path = rules_path(config.rules_file)
    try:
        ruleset = load_rules(path).scoped(scope.covers)
    except RulesError as error:
        raise dg.Failure("invalid rules file:\n" + "\n".join(error.lines())) from None
    now = _now(config.now)
    report = inbound = None
    with scope.client() as client:
        try:
            if not config.events_only:
                report = apply_rules(
                    client,
                    scope.lake(),
                    ruleset,
                    run_id=context.run.run_id,
                    dry_run=config.dry_run,
                    max_transitions=config.max_transitions,
                    now=now,
                    concurrency=config.concurrency,
                    logger=context.log,
                    refresh=refresh_orders,
                )
            inbound = apply_inbound(
                context,
                scope,
                ruleset,
                client,
                dry_run=config.dry_run,
                max_transitions=config.max_transitions,
                now=now,
            )
        except BlastRadiusError as error:
            raise dg.Failure(str(error), metadata=_plan_metadata(error.plan)) from None
        except (MissingScopeError, NoDataError) as error:
            raise dg.Failure(f"{scope.label}: {error}") from None
    if report is not None:
        for warning in report.warnings:
            context.log.warning(warning)
    metadata = _report_metadata(report, path) if report else {"rules_file": str(path)}
    yield dg.MaterializeResult(metadata=metadata | inbound_metadata(inbound))
    # Failures after the materialization, so its metadata shows what did go through.
    if report is not None and report.failed:
        raise dg.Failure(
            report.failure_message(),
            metadata={"failed_orders": dg.MetadataValue.json([r.order_id for r in report.failed])},
        )
    dead = [o for o in inbound.outcomes if o.state == "dead"] if inbound else []
    if dead:  # failed ones are retried with backoff; dead ones need a person
        shown = ", ".join(f"{o.source}/{o.event_id} ({o.detail})" for o in dead[:10])
        raise dg.Failure(f"{len(dead)} inbound events gave up after repeated failures: {shown}")


def _plan_metadata(plan: Plan) -> dict[str, Any]:
    return {
        "planned": len(plan.live()),
        "per_rule": dg.MetadataValue.json(dict(plan.per_rule(live=True))),
    }


def _report_metadata(report: RunReport, path: Path) -> dict[str, Any]:
    applied = report.outcome(audit.APPLIED)
    others = [r for r in report.rows if r.outcome != audit.APPLIED]
    return {
        **report.counts(),
        "dry_run": report.dry_run,
        "changes": dg.MetadataValue.md(markdown_rows(applied)),
        "not_changed": dg.MetadataValue.md(markdown_rows(others, limit=200)),
        "matched_per_rule": dg.MetadataValue.json(report.plan.matched),
        "failed_orders": dg.MetadataValue.json([r.order_id for r in report.failed]),
        "warnings": dg.MetadataValue.json(report.warnings),
        "rules_file": str(path),
        "snapshot_id": report.snapshot_id,
        "eval_key": report.eval_key,
        "evaluated_at": report.now.isoformat(),
        "audit_snapshot": report.audit_snapshot or "",
        "refresh": report.refresh,
        "duration_s": round(report.duration_s, 3),
    }
