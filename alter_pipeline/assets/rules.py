"""Status rules in Dagster: the `status_transitions` asset (one rules run, its audit rows),
`apply_rules_job`, and `rules_sensor`, which requests a run when new order events arrive or the
rules file changes.

The work itself is plain Python in alter_pipeline/rules/apply.py; this module turns its report
into materialization metadata and its refusals into `dg.Failure`s with one clear reason.
"""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import duckdb
from pydantic import Field

from alter_pipeline.assets.inbound import apply_inbound, inbound_metadata
from alter_pipeline.assets.jobs import sensor_default_status
from alter_pipeline.assets.scope import Scope, Tick, scope_of, tick_each_storefront
from alter_pipeline.config import Settings
from alter_pipeline.contract.fields import as_utc
from alter_pipeline.lake import Snapshot
from alter_pipeline.lake.locate import open_lake
from alter_pipeline.resources import AlterApiResource, LakeResource
from alter_pipeline.rules import audit
from alter_pipeline.rules.parse import RulesError, content_hash, load_rules, parse_rules
from alter_pipeline.storefronts import Storefronts

if TYPE_CHECKING:  # for annotations only: the module itself is imported when a run applies
    from alter_pipeline.rules.apply import Plan, RunReport

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
    from alter_pipeline.api.errors import MissingScopeError
    from alter_pipeline.rules.apply import BlastRadiusError, apply_rules
    from alter_pipeline.rules.data import NoDataError

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


def _plan_metadata(plan: "Plan") -> dict[str, Any]:
    return {
        "planned": len(plan.live()),
        "per_rule": dg.MetadataValue.json(dict(plan.per_rule(live=True))),
    }


def _report_metadata(report: "RunReport", path: Path) -> dict[str, Any]:
    from alter_pipeline.rules.apply import markdown_rows

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


apply_rules_job = dg.define_asset_job(
    "apply_rules_job",
    selection=dg.AssetSelection.assets(ASSET),
    description="Apply the status rules of $ALTER_RULES_FILE to matching orders (audited).",
    executor_def=dg.in_process_executor,
)


# ---- sensor ---------------------------------------------------------------------------------


def latest_order_event(snapshot: Snapshot | None) -> int:
    """The highest `sequence` of an order event in the lake (0 when there is none)."""
    if snapshot is None or not snapshot.has_table("order_events"):
        return 0
    files = (snapshot.table_dir("order_events") / "**" / "*.parquet").as_posix()
    with duckdb.connect(":memory:") as con:
        row = con.execute(
            "SELECT max(sequence) FROM read_parquet($files, hive_partitioning = true) "
            "WHERE order_id IS NOT NULL",
            {"files": files},
        ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _cursor(text: str | None) -> tuple[int, str]:
    try:
        data = json.loads(text) if text else {}
        return int(data.get("sequence", 0)), str(data.get("rules", ""))
    except (ValueError, TypeError, AttributeError):
        return 0, ""  # an unreadable cursor: evaluate as on a first tick


def make_rules_sensor(
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
        run_config={"ops": {ASSET: {"config": {"rules_file": str(path.absolute())}}}},
        tags={
            "alter/rules_hash": digest[:16],
            "alter/events_to": str(sequence),
            "alter/trigger": trigger,
        },
        partition_key=partition,
    )
    return request, json.dumps({"sequence": sequence, "rules": digest}), ""


status_transitions = build_status_transitions()
rules_sensor = make_rules_sensor()
