"""Apply the event-driven rules to the pending events of the inbound inbox.

A run: claim the due events of the inbox (pending, failed ones whose retry is due, those a
crashed run left) -> give each event to the first enabled rule whose `on:` names its source and
type and whose `order_id` path finds an order id in it -> stop before any change if that moves
more orders than the blast-radius limits allow (the events stay pending) -> re-read the orders
from the API (50 a request) -> per event, in the order received: the order must exist, not
already have the target status, be allowed to move there by the transition table and satisfy
the rule's `when` on the re-read -> claim the move in the ledger under the inbound event's id
(a redelivered or replayed event, or a re-run after a crash, never applies twice) -> PATCH ->
record the outcome in the inbox and in `status_transitions` (the detail names the source and
event id) -> refresh the changed orders so their `order.status_changed` events and webhooks
follow.

Outcomes in the inbox: applied; skipped with the reason (no matching rule, no order id in the
event, unknown order, order already there, move not allowed, condition not met, the ledger's
refusal); failed (re-read or PATCH failed: retried later with backoff, dead after a bound).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alter_pipeline.api.errors import NotFoundError
from alter_pipeline.contract.fields import DETAIL_SHAPE_GAPS
from alter_pipeline.inbound.inbox import APPLIED, DEAD, FAILED, SKIPPED, Inbox, InboxEvent
from alter_pipeline.lake import Lake
from alter_pipeline.lake.flatten import RecordError
from alter_pipeline.rules import audit, ledger
from alter_pipeline.rules.apply import (
    BATCH_SIZE,
    BlastRadiusError,
    Candidate,
    Logger,
    Plan,
    RulesClient,
    _refresh_views,
    blast_radius,
    check_scopes,
    refresh_changed,
)
from alter_pipeline.rules.audit import AuditRow
from alter_pipeline.rules.data import snapshot_connection, synced_columns
from alter_pipeline.rules.evaluate import OrderFacts, why_not
from alter_pipeline.rules.model import Rule, RuleSet
from alter_pipeline.rules.triggers import order_id_at, type_matches

log = logging.getLogger(__name__)
MAX_EVENTS_PER_RUN = 1000

# Reasons an event is skipped (the start of its detail, for counting and filtering).
NO_RULE = "no matching rule"
NO_ORDER_ID = "no order id in the event"
UNKNOWN_ORDER = "unknown order"
ALREADY_THERE = "order already there"
NOT_ALLOWED = "move not allowed"
NOT_MET = "condition not met"


@dataclass(frozen=True)
class EventOutcome:
    sequence: int
    source: str
    event_id: str
    type: str
    state: str  # applied, skipped, failed or dead (as recorded in the inbox)
    detail: str
    order_id: int | None = None
    rule_id: str | None = None


@dataclass
class EventRunReport:
    run_id: str
    outcomes: list[EventOutcome] = field(default_factory=list)
    rows: list[AuditRow] = field(default_factory=list)
    audit_snapshot: str | None = None
    refresh: str = ""

    def counts(self) -> dict[str, int]:
        states = Counter(o.state for o in self.outcomes)
        return {
            "events": len(self.outcomes),
            **{s: states.get(s, 0) for s in (APPLIED, SKIPPED, FAILED, DEAD)},
        }

    @property
    def applied(self) -> list[EventOutcome]:
        return [o for o in self.outcomes if o.state == APPLIED]


@dataclass(frozen=True)
class _Match:
    event: InboxEvent
    rule: Rule
    order_id: int


def match_event(rules: Sequence[Rule], event: InboxEvent) -> tuple[Rule | None, int | None, str]:
    """The rule an event goes to and the order it names, or why none (one line)."""
    candidates = [
        r
        for r in rules
        if r.on is not None and r.on.source == event.source and type_matches(r.on, event.type)
    ]
    if not candidates:
        return None, None, f"{NO_RULE} for {event.source} {event.type or '(no type)'}"
    payload = event.payload()
    for rule in candidates:
        assert rule.on is not None
        order_id = order_id_at(payload, rule.on.order_id_path)
        if order_id is not None:
            return rule, order_id, ""
    paths = ", ".join(sorted({r.on.path_text for r in candidates if r.on is not None}))
    return candidates[0], None, f"{NO_ORDER_ID} at {paths}"


def why_skip(ruleset: RuleSet, rule: Rule, facts: OrderFacts, now: datetime) -> str:
    """Why `rule` leaves this (re-read) order alone, or '' when it would move it."""
    target, status = rule.target_status, facts.status or "?"
    if status == target:
        return f"{ALREADY_THERE}: order {facts.order_id} is already {target}"
    if not ruleset.transitions.allowed(status, target):
        allowed = ", ".join(ruleset.transitions.targets(status)) or "nothing (final)"
        return f"{NOT_ALLOWED}: {status} → {target} ({status} may move to {allowed})"
    reason = why_not(rule.when, facts, now)
    return f"{NOT_MET}: {reason}" if reason else ""


def apply_inbox_events(
    client: RulesClient,
    lake: Lake,
    ruleset: RuleSet,
    inbox: Inbox,
    *,
    run_id: str,
    now: datetime | None = None,
    max_transitions: int | None = None,
    book: ledger.Ledger | None = None,
    logger: Logger = log,
    refresh: bool = True,
    limit: int = MAX_EVENTS_PER_RUN,
) -> EventRunReport:
    """Apply the event rules to the due inbox events. Raises BlastRadiusError,
    MissingScopeError or NoDataError before any change (the events stay pending)."""
    now = now or datetime.now(UTC)
    report = EventRunReport(run_id)
    events = inbox.claim_due(run_id, time.time(), limit)
    if not events:
        return report
    run = _EventRun(client, lake, ruleset, inbox, report, now, logger)
    try:
        matches = run.match(events)
        run.check(matches, max_transitions)
        own_ledger = book is None
        book = book or ledger.Ledger.for_data_dir(lake.root)
        try:
            run.apply(matches, book)
        finally:
            if own_ledger:
                book.close()
    finally:
        done = {o.sequence for o in report.outcomes}
        inbox.release([e.sequence for e in events if e.sequence not in done], run_id)
    report.audit_snapshot = audit.write_audit(lake, report.rows, run_id=run_id)
    if report.audit_snapshot:
        _refresh_views(lake, logger)  # the audit table shows in warehouse.duckdb at once
    if refresh:
        changed = [o.order_id for o in report.applied if o.order_id is not None]
        report.refresh = refresh_changed(client, lake, changed, logger)
    return report


class _EventRun:
    def __init__(
        self,
        client: RulesClient,
        lake: Lake,
        ruleset: RuleSet,
        inbox: Inbox,
        report: EventRunReport,
        now: datetime,
        logger: Logger,
    ) -> None:
        self.client = client
        self.lake = lake
        self.ruleset = ruleset
        self.inbox = inbox
        self.report = report
        self.now = now
        self.log = logger

    def match(self, events: list[InboxEvent]) -> list[_Match]:
        rules = self.ruleset.event_rules
        matches = []
        for event in events:
            rule, order_id, reason = match_event(rules, event)
            if rule is None or order_id is None:
                self.resolve(event, SKIPPED, reason, rule=rule)
            else:
                matches.append(_Match(event, rule, order_id))
        return matches

    def check(self, matches: list[_Match], max_transitions: int | None) -> None:
        if not matches:
            return
        plan = Plan(
            candidates=[Candidate(m.order_id, m.rule, "", m.rule.dry_run) for m in matches],
            conflicts=[],
            matched={},
        )
        reasons = blast_radius(plan, _with_event_rules(self.ruleset), max_transitions)
        if reasons and plan.live():
            raise BlastRadiusError([f"inbound events: {r}" for r in reasons], plan)
        check_scopes(self.client, write=bool(plan.live()))

    def apply(self, matches: list[_Match], book: ledger.Ledger) -> None:
        if not matches:
            return
        ids = sorted({m.order_id for m in matches})
        with snapshot_connection(self.lake.current()) as con:
            synced = synced_columns(con, ids, DETAIL_SHAPE_GAPS.values())
        fresh, error = self.reread(ids)
        for match in matches:  # in the order received: a later event sees an earlier's change
            self.one(match, fresh, error, synced, book)

    def reread(self, ids: list[int]) -> tuple[dict[int, dict[str, Any]], Exception | None]:
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), BATCH_SIZE):
            part = ids[start : start + BATCH_SIZE]
            try:
                raws = self.client.get_orders_raw(part)
            except NotFoundError:
                raws = self.one_by_one(part)
            except Exception as error:  # the orders cannot be checked: retried later
                return found, error
            found |= {raw["id"]: raw for raw in raws if isinstance(raw, Mapping) and "id" in raw}
        return found, None

    def one_by_one(self, ids: list[int]) -> list[dict[str, Any]]:
        raws = []
        for order_id in ids:
            try:
                raws.extend(self.client.get_orders_raw([order_id]))
            except NotFoundError:
                continue  # this one is unknown
        return raws

    def one(
        self,
        match: _Match,
        fresh: dict[int, dict[str, Any]],
        error: Exception | None,
        synced: Mapping[int, Mapping[str, Any]],
        book: ledger.Ledger,
    ) -> None:
        event, rule, order_id = match.event, match.rule, match.order_id
        target = rule.target_status
        if error is not None:
            self.resolve(event, FAILED, f"re-read failed: {error}", rule, order_id)
            return
        raw = fresh.get(order_id)
        if raw is None:
            self.resolve(event, SKIPPED, f"{UNKNOWN_ORDER} {order_id}", rule, order_id)
            return
        try:
            facts = OrderFacts.from_raw(raw, synced.get(order_id))
        except RecordError as problem:
            detail = f"re-read order breaks the contract: {problem}"
            self.resolve(event, FAILED, detail, rule, order_id)
            return
        status = facts.status or "?"
        skip = self.why_skip(rule, facts)
        if skip:
            self.resolve(event, SKIPPED, skip, rule, order_id, status)
            return
        if rule.dry_run:
            move = f"dry run: would move {status} → {target}"
            self.resolve(event, SKIPPED, move, rule, order_id, status, dry_run=True)
            return
        key = ledger.Key(
            order_id, rule.id, status, target, f"inbound:{event.source}:{event.event_id}"
        )
        refusal = book.claim([key], self.report.run_id)[key]
        if refusal:
            self.resolve(event, SKIPPED, refusal, rule, order_id, status)
            return
        state, detail = self.patch(order_id, status, target)
        book.resolve(key, self.report.run_id, state, detail)
        if state == APPLIED:
            fresh[order_id] = {**raw, "status": target}  # what a later event of it will see
        self.resolve(event, state, detail, rule, order_id, status)

    def why_skip(self, rule: Rule, facts: OrderFacts) -> str:
        return why_skip(self.ruleset, rule, facts, self.now)

    def patch(self, order_id: int, status: str, target: str) -> tuple[str, str]:
        try:
            self.client.set_order_status(order_id, target)
        except NotFoundError:
            return SKIPPED, f"{UNKNOWN_ORDER} {order_id} (deleted before the change)"
        except Exception as error:  # retried later with backoff
            return FAILED, f"{type(error).__name__}: {error}"
        return APPLIED, f"{status} → {target}"

    def resolve(
        self,
        event: InboxEvent,
        state: str,
        detail: str,
        rule: Rule | None = None,
        order_id: int | None = None,
        from_status: str | None = None,
        *,
        dry_run: bool = False,
    ) -> None:
        recorded = self.inbox.resolve(
            event.sequence,
            self.report.run_id,
            state,
            detail,
            order_id=order_id,
            rule_id=rule.id if rule else None,
        )
        if recorded == DEAD:
            detail = f"{detail} (gave up after repeated failures)"
        self.report.outcomes.append(
            EventOutcome(
                event.sequence,
                event.source,
                event.event_id,
                event.type,
                recorded,
                detail,
                order_id,
                rule.id if rule else None,
            )
        )
        if rule is not None and order_id is not None:
            outcome = {APPLIED: audit.APPLIED, SKIPPED: audit.SKIPPED}.get(state, audit.FAILED)
            if dry_run:
                outcome = audit.APPLIED  # as scheduled dry runs record what would happen
            self.report.rows.append(
                AuditRow(
                    order_id=order_id,
                    rule_id=rule.id,
                    from_status=from_status,
                    to_status=rule.target_status,
                    dry_run=dry_run,
                    outcome=outcome,
                    detail=f"{event.label}: {detail}",
                    run_id=self.report.run_id,
                    at=datetime.now(UTC),
                )
            )


def _with_event_rules(ruleset: RuleSet) -> RuleSet:
    """The rule set whose `enabled` are its event rules (for the per-rule guard)."""
    return dataclasses.replace(
        ruleset, rules=tuple(dataclasses.replace(r, on=None) for r in ruleset.event_rules)
    )
