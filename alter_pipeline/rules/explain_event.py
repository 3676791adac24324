"""`alter-pipeline rules test FILE --event EVENT.json`: what one inbound event would do.

The event is read as the inbox would hold it (its JSON body, a source and a type); the rule it
would go to, the order its `order_id` path names and that order's verdict are printed, with
the reason when nothing would change. Nothing is changed and nothing is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from alter_pipeline.inbound.inbox import InboxEvent
from alter_pipeline.rules.evaluate import OrderFacts, verdict
from alter_pipeline.rules.model import Rule, RuleSet
from alter_pipeline.rules.on_events import UNKNOWN_ORDER, match_event, why_skip
from alter_pipeline.rules.triggers import order_id_at, type_matches

FactsOf = Callable[[int], OrderFacts | None]


class EventFileError(ValueError):
    """The event file or the options that name its source and type are unusable."""


def read_event(
    path: Path, source: str | None, event_type: str | None, rules: list[Rule]
) -> InboxEvent:
    try:
        body = path.read_bytes()
        payload = json.loads(body)
    except OSError as error:
        raise EventFileError(f"--event {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise EventFileError(f"--event {path}: not JSON ({error})") from None
    named = sorted({r.on.source for r in rules if r.on is not None})
    if source is None:
        if len(named) != 1:
            raise EventFileError(
                f"--source is needed: the rules name the sources {', '.join(named) or 'none'}"
            )
        source = named[0]
    fields = payload if isinstance(payload, dict) else {}
    kind = event_type if event_type is not None else str(fields.get("type") or "")
    event_id = str(fields.get("id") or path.name)
    return InboxEvent(0, source, event_id, kind, body, 0.0, "pending", 0)


def explain_event(
    ruleset: RuleSet,
    path: Path,
    source: str | None,
    event_type: str | None,
    now: datetime,
    facts_of: FactsOf,
) -> list[str]:
    on_rules = [r for r in ruleset.rules if r.on is not None]
    if not on_rules:
        raise EventFileError("the rules file has no rule with `on:` (an event trigger)")
    event = read_event(path, source, event_type, on_rules)
    lines = [f"event {event.event_id}: source {event.source}, type {event.type or '(none)'}"]
    payload = event.payload()
    for on_rule in on_rules:
        lines.append("  " + _trigger_line(on_rule, event, payload))
    rule, order_id, reason = match_event(ruleset.event_rules, event)
    if rule is None or order_id is None:
        return [*lines, f"  → nothing would change: {reason}"]
    facts = facts_of(order_id)
    if facts is None:
        return [*lines, f"  → skipped: {UNKNOWN_ORDER} {order_id} (not found)"]
    lines.append(f"  order {order_id}: {facts.status}")
    lines += ["    " + line for line in verdict(rule, facts, now).lines()]
    skip = why_skip(ruleset, rule, facts, now)
    if skip:
        return [*lines, f"  → skipped: {skip}"]
    mode = " (dry run: only recorded)" if rule.dry_run else ""
    return [
        *lines,
        f"  → {rule.id} would move order {order_id} from {facts.status} to "
        f"{rule.target_status}{mode}",
    ]


def _trigger_line(rule: Rule, event: InboxEvent, payload: object) -> str:
    assert rule.on is not None
    head = f"{rule.id}: on {rule.on.source} {' or '.join(rule.on.types)}"
    if not rule.enabled:
        return f"no        {head}: the rule is disabled"
    if rule.on.source != event.source:
        return f"no        {head}: another source"
    if not type_matches(rule.on, event.type):
        return f"no        {head}: another type"
    order_id = order_id_at(payload, rule.on.order_id_path)
    if order_id is None:
        return f"no        {head}: no order id at {rule.on.path_text}"
    return f"TRIGGERED {head}: order id {order_id} at {rule.on.path_text}"
