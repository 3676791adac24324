"""Plan and apply the status transitions the rules ask for. Plain Python: the Dagster asset
(alter_pipeline/assets/rules.py) and the benchmarks call `apply_rules`.

A run: check the credential's scopes -> evaluate every enabled rule over one lake snapshot (one
SQL query each) -> give each order to one rule (priority, then file order) -> stop if the plan
exceeds the blast-radius limits -> per batch of 50: claim in the ledger, re-read the orders from
the API, re-evaluate each rule on its re-read order, PATCH the survivors (a few at a time) ->
append every outcome to the audit table -> let the sync refresh the changed orders.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from alter_pipeline.api.errors import MissingScopeError, NotFoundError
from alter_pipeline.contract.fields import DETAIL_SHAPE_GAPS
from alter_pipeline.lake import Lake
from alter_pipeline.lake.flatten import RecordError
from alter_pipeline.rules import audit, ledger
from alter_pipeline.rules.audit import APPLIED, FAILED, SKIPPED, AuditRow
from alter_pipeline.rules.compile import find_matches
from alter_pipeline.rules.data import data_version, snapshot_connection, synced_columns
from alter_pipeline.rules.evaluate import OrderFacts, why_not
from alter_pipeline.rules.model import Rule, RuleSet
from alter_pipeline.rules.transitions import TransitionTable

log = logging.getLogger(__name__)

READ_SCOPE, WRITE_SCOPE = "orders:read", "orders:write"
GONE = ("order no longer exists", "order not found")  # details of orders found deleted
# Details of orders whose re-read status differs from the lake's (moved meanwhile, e.g. by a
# run that failed after its PATCH took effect): the lake is stale for them.
MOVED = ("already applied", "status changed since the snapshot")
BATCH_SIZE = 50  # ids per POST /customer-orders/batch
DEFAULT_CONCURRENCY = 4  # PATCHes in flight


class RulesClient(Protocol):
    """What a rules run needs of `alter_pipeline.api.AlterClient`."""

    def auth_check(self) -> Any: ...

    def get_orders_raw(self, ids: Sequence[int]) -> list[dict[str, Any]]: ...

    def set_order_status(self, order_id: int, status: str) -> Any: ...


class Logger(Protocol):
    def info(self, msg: str) -> Any: ...

    def warning(self, msg: str) -> Any: ...


class BlastRadiusError(RuntimeError):
    """The plan moves more orders than the limits allow; nothing was changed."""

    def __init__(self, reasons: list[str], plan: Plan) -> None:
        super().__init__("stopped before any change: " + "; ".join(reasons))
        self.reasons = reasons
        self.plan = plan


# ---- planning -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """Rule `rule` would move order `order_id` out of `from_status` (as the snapshot says)."""

    order_id: int
    rule: Rule
    from_status: str
    dry_run: bool

    @property
    def to_status(self) -> str:
        return self.rule.target_status

    def key(self, eval_key: str) -> ledger.Key:
        return ledger.Key(self.order_id, self.rule.id, self.from_status, self.to_status, eval_key)


@dataclass(frozen=True)
class Conflict:
    loser: Candidate
    winner: Candidate


@dataclass
class Plan:
    candidates: list[Candidate]  # one per order, by order_id
    conflicts: list[Conflict]
    matched: dict[str, int]  # orders each rule matched, before conflicts were resolved

    def live(self) -> list[Candidate]:
        return [c for c in self.candidates if not c.dry_run]

    def per_rule(self, *, live: bool) -> Counter[str]:
        return Counter(c.rule.id for c in self.candidates if not (live and c.dry_run))


def make_plan(
    ruleset: RuleSet, matches: Mapping[str, list[tuple[int, str]]], *, dry_run: bool = False
) -> Plan:
    """Give each matched order to one rule: higher priority first, then earlier in the file.

    Live rules are ranked before dry-run ones, so trying a rule out in dry run never takes an
    order away from a rule that is live.
    """

    def is_dry(rule: Rule) -> bool:
        return dry_run or rule.dry_run

    ranked = sorted(ruleset.enabled, key=lambda r: (is_dry(r), r.rank))
    winners: dict[int, Candidate] = {}
    conflicts: list[Conflict] = []
    for rule in ranked:
        for order_id, status in matches.get(rule.id, []):
            candidate = Candidate(order_id, rule, status, is_dry(rule))
            if order_id in winners:
                conflicts.append(Conflict(candidate, winners[order_id]))
            else:
                winners[order_id] = candidate
    return Plan(
        candidates=sorted(winners.values(), key=lambda c: c.order_id),
        conflicts=sorted(conflicts, key=lambda c: (c.loser.order_id, c.loser.rule.rank)),
        matched={rule.id: len(matches.get(rule.id, [])) for rule in ruleset.enabled},
    )


def blast_radius(plan: Plan, ruleset: RuleSet, max_transitions: int | None = None) -> list[str]:
    """Why the plan must not run (empty when it may): live moves over the run or rule limits."""
    limit = ruleset.max_transitions_per_run if max_transitions is None else max_transitions
    live = plan.live()
    reasons = []
    if len(live) > limit:
        reasons.append(
            f"{len(live)} status changes planned, over the limit of {limit} per run "
            f"(max_transitions_per_run); if that is intended, run again with "
            f"--max-transitions {len(live)}"
        )
    per_rule = plan.per_rule(live=True)
    for rule in ruleset.enabled:
        if rule.max_per_run is not None and per_rule[rule.id] > rule.max_per_run:
            reasons.append(
                f"rule {rule.id} would change {per_rule[rule.id]} orders, over its max_per_run "
                f"of {rule.max_per_run}; if that is intended, raise max_per_run in the rules file"
            )
    return reasons


def check_scopes(client: RulesClient, *, write: bool) -> None:
    """Fail before anything starts if the credential cannot re-read (or change) orders."""
    scopes = set(client.auth_check().scopes)
    needed = [READ_SCOPE, WRITE_SCOPE] if write else [READ_SCOPE]
    missing = [s for s in needed if s not in scopes]
    if missing:
        raise MissingScopeError(
            f"the API credential lacks the {' and '.join(missing)} scope "
            f"(it has: {', '.join(sorted(scopes)) or 'none'}); rules need orders:read to "
            f"re-read orders and orders:write to change them: grant the scope, or use --dry-run",
            scope=missing[-1],
        )


# ---- applying -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyOptions:
    run_id: str
    eval_key: str
    now: datetime
    concurrency: int = DEFAULT_CONCURRENCY
    batch_size: int = BATCH_SIZE


class Applier:
    """Carries out a plan: claim, re-read, re-check, PATCH, record. One order's failure is
    recorded and the others go on."""

    def __init__(
        self,
        client: RulesClient,
        book: ledger.Ledger,
        transitions: TransitionTable,
        options: ApplyOptions,
        logger: Logger = log,
        synced: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> None:
        self.client = client
        self.ledger = book
        self.transitions = transitions
        self.options = options
        self.log = logger
        self.synced = synced or {}  # snapshot values of fields the re-read lacks

    def run(self, plan: Plan) -> list[AuditRow]:
        rows = [self._conflict_row(c) for c in plan.conflicts]
        workers = max(1, self.options.concurrency)
        with ThreadPoolExecutor(workers, thread_name_prefix="rules-patch") as pool:
            for batch in _chunks(plan.candidates, self.options.batch_size):
                rows.extend(self._batch(batch, pool))
        return rows

    def _batch(self, batch: list[Candidate], pool: ThreadPoolExecutor) -> list[AuditRow]:
        rows: list[AuditRow] = []
        refusals = self._claim([c for c in batch if not c.dry_run])
        readable = []
        for candidate in batch:
            refusal = refusals.get(candidate.order_id)
            if refusal:
                rows.append(self._row(candidate, SKIPPED, refusal))
            else:
                readable.append(candidate)
        fresh, error = self._reread([c.order_id for c in readable])
        to_patch = []
        for candidate in readable:
            outcome, detail = self._decide(candidate, fresh, error)
            if outcome is None and not candidate.dry_run:
                to_patch.append(candidate)
                continue
            if outcome is None:
                outcome, detail = APPLIED, f"dry run: would move {_move(candidate)}"
            else:
                self._resolve(candidate, outcome, detail)
            rows.append(self._row(candidate, outcome, detail))
        rows.extend(pool.map(self._patch, to_patch))
        return rows

    def _claim(self, live: list[Candidate]) -> dict[int, str | None]:
        if not live:
            return {}
        keys = {c.key(self.options.eval_key): c.order_id for c in live}
        claimed = self.ledger.claim(keys, self.options.run_id)
        return {keys[key]: refusal for key, refusal in claimed.items()}

    def _reread(self, ids: list[int]) -> tuple[dict[int, Mapping[str, Any]], Exception | None]:
        if not ids:
            return {}, None
        try:
            raws = self.client.get_orders_raw(ids)
        except NotFoundError:
            if len(ids) == 1:
                return {}, None
            return self._reread_one_by_one(ids)  # find which of the batch are gone
        except Exception as error:  # the batch cannot be checked: none of it is changed
            return {}, error
        return {raw["id"]: raw for raw in raws if isinstance(raw, Mapping) and "id" in raw}, None

    def _reread_one_by_one(
        self, ids: list[int]
    ) -> tuple[dict[int, Mapping[str, Any]], Exception | None]:
        found: dict[int, Mapping[str, Any]] = {}
        for order_id in ids:
            part, error = self._reread([order_id])
            if error is not None:
                return found, error
            found |= part
        return found, None

    def _decide(
        self, c: Candidate, fresh: Mapping[int, Mapping[str, Any]], error: Exception | None
    ) -> tuple[str | None, str]:
        """(None, '') to go ahead, else the outcome and why: the snapshot may be minutes old."""
        if error is not None:
            return FAILED, f"re-read failed: {error}"
        raw = fresh.get(c.order_id)
        if raw is None:
            # Deleted since the snapshot (a shopper abandoned the cart): nothing left to move,
            # and no reason to turn the run red; the refresh records the deletion.
            return SKIPPED, "order no longer exists (the batch read did not return it)"
        try:
            facts = OrderFacts.from_raw(raw, self.synced.get(c.order_id))
        except RecordError as problem:
            return FAILED, f"re-read order breaks the contract: {problem}"
        if facts.status == c.to_status:
            return SKIPPED, f"{MOVED[0]}: the order is already {c.to_status}"
        if facts.status != c.from_status:
            return SKIPPED, f"{MOVED[1]}: now {facts.status}"
        reason = why_not(c.rule.when, facts, self.options.now)
        if reason:
            return SKIPPED, f"no longer matches: {reason}"
        if not self.transitions.allowed(c.from_status, c.to_status):
            return FAILED, f"the transition table forbids {_move(c)}"
        return None, ""

    def _patch(self, c: Candidate) -> AuditRow:
        try:
            self.client.set_order_status(c.order_id, c.to_status)
        except NotFoundError as error:
            outcome, detail = SKIPPED, f"order not found (deleted meanwhile): {error}"
        except Exception as error:  # recorded; the other orders go on
            outcome, detail = FAILED, f"{type(error).__name__}: {error}"
        else:
            outcome, detail = APPLIED, _move(c)
        self._resolve(c, outcome, detail)
        return self._row(c, outcome, detail)

    def _resolve(self, c: Candidate, outcome: str, detail: str) -> None:
        if not c.dry_run:
            self.ledger.resolve(c.key(self.options.eval_key), self.options.run_id, outcome, detail)

    def _conflict_row(self, conflict: Conflict) -> AuditRow:
        winner = conflict.winner.rule
        detail = f"conflict: rule {winner.id} (priority {winner.priority}) takes this order"
        return self._row(conflict.loser, SKIPPED, detail)

    def _row(self, c: Candidate, outcome: str, detail: str) -> AuditRow:
        return AuditRow(
            order_id=c.order_id,
            rule_id=c.rule.id,
            from_status=c.from_status,
            to_status=c.to_status,
            dry_run=c.dry_run,
            outcome=outcome,
            detail=detail,
            run_id=self.options.run_id,
            at=datetime.now(UTC),
        )


def _move(c: Candidate) -> str:
    return f"{c.from_status} → {c.to_status}"


def _chunks(items: list[Candidate], size: int) -> Iterator[list[Candidate]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---- one run --------------------------------------------------------------------------------


@dataclass
class RunReport:
    run_id: str
    snapshot_id: str
    eval_key: str
    now: datetime
    dry_run: bool
    plan: Plan
    rows: list[AuditRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    audit_snapshot: str | None = None
    refresh: str = ""
    duration_s: float = 0.0

    def outcome(self, outcome: str, *, dry_run: bool | None = None) -> list[AuditRow]:
        return [
            r
            for r in self.rows
            if r.outcome == outcome and (dry_run is None or r.dry_run == dry_run)
        ]

    @property
    def applied(self) -> list[AuditRow]:
        """Changes actually made (not dry-run rows)."""
        return self.outcome(APPLIED, dry_run=False)

    @property
    def failed(self) -> list[AuditRow]:
        return self.outcome(FAILED)

    def counts(self) -> dict[str, int]:
        return {
            "applied": len(self.applied),
            "would_apply": len(self.outcome(APPLIED, dry_run=True)),
            "skipped": len(self.outcome(SKIPPED)),
            "failed": len(self.failed),
            "conflicts": len(self.plan.conflicts),
        }

    def failure_message(self) -> str:
        shown = ", ".join(f"{r.order_id} ({r.detail})" for r in self.failed[:20])
        more = f" and {len(self.failed) - 20} more" if len(self.failed) > 20 else ""
        return f"{len(self.failed)} orders could not be changed: {shown}{more}"


def apply_rules(
    client: RulesClient,
    lake: Lake,
    ruleset: RuleSet,
    *,
    run_id: str,
    dry_run: bool = False,
    max_transitions: int | None = None,
    now: datetime | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    book: ledger.Ledger | None = None,
    logger: Logger = log,
    refresh: bool = True,
) -> RunReport:
    """One rules run over the current snapshot. Raises MissingScopeError or BlastRadiusError
    before any change; otherwise returns a report whose `failed` rows list what did not go.
    `refresh=False` leaves the changed orders to the next sync (tests use it to replay a run
    over the very data it changed)."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    rules = ruleset.enabled
    check_scopes(client, write=not dry_run and any(not r.dry_run for r in rules))
    snapshot = lake.current()
    with snapshot_connection(snapshot) as con:
        matches = find_matches(con, rules, now)
        plan = make_plan(ruleset, matches, dry_run=dry_run)
        reasons = blast_radius(plan, ruleset, max_transitions)
        if reasons and plan.live():
            raise BlastRadiusError(reasons, plan)
        synced = synced_columns(
            con, [c.order_id for c in plan.candidates], DETAIL_SHAPE_GAPS.values()
        )
    assert snapshot is not None  # snapshot_connection raised otherwise
    report = RunReport(run_id, snapshot.snapshot_id, data_version(snapshot), now, dry_run, plan)
    report.warnings = [f"a live run would stop: {r}" for r in reasons]
    options = ApplyOptions(run_id, report.eval_key, now, concurrency)
    own_ledger = book is None
    book = book or ledger.Ledger.for_data_dir(lake.root)
    try:
        applier = Applier(client, book, ruleset.transitions, options, logger, synced)
        report.rows = applier.run(plan)
    finally:
        if own_ledger:
            book.close()
    report.audit_snapshot = audit.write_audit(lake, report.rows, run_id=run_id)
    _refresh_views(lake, logger)
    if refresh:
        # Orders found gone or moved are refreshed too: the lake records their deletion or
        # status, so the next run does not plan (and fail or skip) them again.
        gone = [r.order_id for r in report.outcome(SKIPPED) if r.detail.startswith(GONE)]
        moved = [r.order_id for r in report.outcome(SKIPPED) if r.detail.startswith(MOVED)]
        changed = [r.order_id for r in report.applied]
        report.refresh = refresh_changed(client, lake, changed + gone + moved, logger)
    report.duration_s = time.perf_counter() - started
    return report


def _refresh_views(lake: Lake, logger: Logger) -> None:
    from alter_pipeline.warehouse import ensure_views

    # Only so the audit table shows in warehouse.duckdb at once; the next sync does it anyway.
    try:
        skipped = ensure_views(lake.root).skipped_reason
    except Exception as error:  # e.g. another run creating the same view this instant
        skipped = str(error)
    if skipped:
        logger.warning(f"warehouse views not updated: {skipped}")


def refresh_changed(client: Any, lake: Lake, order_ids: list[int], logger: Logger) -> str:
    """Let the sync re-read the changed orders, so `order.status_changed` events (and their
    webhooks) follow without waiting for the next sync. Optional: skipped if not installed."""
    if not order_ids:
        return "nothing to refresh"
    try:
        from alter_pipeline.events.incremental import refresh_orders
    except ImportError as error:
        logger.info(f"no incremental refresh available ({error}); the next sync records them")
        return "skipped: alter_pipeline.events.incremental.refresh_orders is not available"
    try:
        refresh_orders(client, lake, sorted(set(order_ids)))
    except Exception as error:  # the changes are made; the next sync will record them
        logger.warning(f"refreshing {len(order_ids)} changed orders failed: {error}")
        return f"failed: {type(error).__name__}: {error}"
    return f"refreshed {len(set(order_ids))} orders"


# ---- presentation ---------------------------------------------------------------------------

MAX_TABLE_ROWS = 1000


def markdown_rows(rows: list[AuditRow], limit: int = MAX_TABLE_ROWS) -> str:
    lines = ["| order | rule | from | to | outcome | detail |", "|" + " --- |" * 6]
    for row in rows[:limit]:
        outcome = f"{row.outcome} (dry run)" if row.dry_run else row.outcome
        cells = (row.order_id, row.rule_id, row.from_status, row.to_status, outcome, row.detail)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if len(rows) > limit:
        lines.append(f"\n{len(rows) - limit} more rows in the status_transitions table.")
    return "\n".join(lines) if rows else "(none)"


def _cell(value: object) -> str:
    return ("" if value is None else str(value)).replace("|", "\\|").replace("\n", " ")
