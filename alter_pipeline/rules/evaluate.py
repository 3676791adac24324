"""Evaluate a rule in Python on one order, explaining which conditions held and why.

Used where a single order is at hand: the order re-read from the API just before a PATCH, and
`alter-pipeline rules test --order ID`. The semantics are those of the compiled SQL
(compile.py), which the property tests check: a missing value never satisfies a comparison,
`any_item` needs one item, `all_items` holds for an order without items.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb

from alter_pipeline.contract.fields import merge_detail
from alter_pipeline.lake import schemas
from alter_pipeline.lake.flatten import order_row
from alter_pipeline.rules import model
from alter_pipeline.rules.fields import Kind, format_duration

_SYMBOLS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_ORDER_COLUMNS = schemas.API_ORDERS.names
_ITEM_COLUMNS = schemas.API_ORDER_ITEMS.names
MAX_ITEMS_SHOWN = 3


@dataclass(frozen=True)
class OrderFacts:
    """One order as the warehouse would hold it: its `orders` row and its `order_items` rows."""

    order: Mapping[str, Any]
    items: tuple[Mapping[str, Any], ...]

    @classmethod
    def from_raw(
        cls, raw: Mapping[str, Any], synced: Mapping[str, Any] | None = None
    ) -> OrderFacts:
        """Flatten a raw API order exactly as the sync does (RecordError if it breaks contract).

        `synced` holds the order's row as the lake has it: a field the raw order does not
        carry at all (the batch endpoint's detail shape has no `isSeenByOwner`, the list shape
        the sync reads does) keeps its synced value instead of reading as missing.
        """
        if isinstance(raw, Mapping):  # order_row names what else it is
            raw = merge_detail(raw, synced)
        row, items = order_row(raw)
        order = dict(zip(_ORDER_COLUMNS, row, strict=True))
        if synced is not None and "storefront_id" in synced:
            order["storefront_id"] = synced["storefront_id"]  # not an API field: the lake's
        return cls(order, tuple(dict(zip(_ITEM_COLUMNS, item, strict=True)) for item in items))

    @property
    def order_id(self) -> int:
        return self.order["order_id"]

    @property
    def status(self) -> str | None:
        return self.order.get("status")

    @property
    def last_item_update(self) -> datetime | None:
        stamps = [i["updated_at"] for i in self.items if i.get("updated_at") is not None]
        return max(stamps) if stamps else None


@dataclass
class Check:
    """The verdict of one condition node, with the actual value it saw and its sub-checks."""

    passed: bool
    label: str
    actual: str = ""
    children: list[Check] = field(default_factory=list)

    def lines(self, indent: int = 0) -> list[str]:
        mark = "✓" if self.passed else "✗"
        actual = f"  (actual: {self.actual})" if self.actual else ""
        out = [f"{'  ' * indent}{mark} {self.label}{actual}"]
        for child in self.children:
            out.extend(child.lines(indent + 1))
        return out

    def first_failure(self) -> Check | None:
        """The deepest failing leaf along the first failing branch: 'what did not hold'."""
        if self.passed:
            return None
        for child in self.children:
            if not child.passed:
                return child.first_failure()
        return self


def evaluate(condition: model.Condition, facts: OrderFacts, now: datetime) -> Check:
    return _check(condition, facts.order, facts, now)


def matches(condition: model.Condition, facts: OrderFacts, now: datetime) -> bool:
    return evaluate(condition, facts, now).passed


def _check(
    condition: model.Condition, row: Mapping[str, Any], facts: OrderFacts, now: datetime
) -> Check:
    match condition:
        case model.Compare():
            return _compare(condition, row, facts, now)
        case model.AllOf(conditions=parts):
            children = [_check(p, row, facts, now) for p in parts]
            return Check(all(c.passed for c in children), "all of", children=children)
        case model.AnyOf(conditions=parts):
            children = [_check(p, row, facts, now) for p in parts]
            return Check(any(c.passed for c in children), "any of", children=children)
        case model.Not(condition=inner):
            child = _check(inner, row, facts, now)
            if not child.children:  # `not` of a comparison reads best as one line
                return Check(not child.passed, f"not {child.label}", child.actual)
            return Check(not child.passed, "not", children=[child])
        case model.Items():
            return _items(condition, facts, now)
    raise TypeError(f"not a condition: {condition!r}")


def _items(items: model.Items, facts: OrderFacts, now: datetime) -> Check:
    checks = [
        (item, _check(items.condition, item, facts, now)) for item in facts.items
    ]  # items are few per order, so checking all of them is cheap and explains best
    label = f"{items.quantifier}_item{'s' if items.quantifier == 'all' else ''}"
    count = f"{len(checks)} item{'s' if len(checks) != 1 else ''}"
    if items.quantifier == "any":
        passed = any(c.passed for _, c in checks)
        shown = [c for c in checks if c[1].passed][:1] if passed else checks[:MAX_ITEMS_SHOWN]
    else:
        passed = all(c.passed for _, c in checks)
        shown = [] if passed else [c for c in checks if not c[1].passed][:MAX_ITEMS_SHOWN]
    children = [_titled(item, check) for item, check in shown]
    return Check(passed, label, count, children)


def _titled(item: Mapping[str, Any], check: Check) -> Check:
    title = f"item {item.get('order_item_id')}"
    return Check(check.passed, title, children=[check])


def _compare(
    compare: model.Compare, row: Mapping[str, Any], facts: OrderFacts, now: datetime
) -> Check:
    actual = _actual(compare, row, facts, now)
    passed = actual is not None and _holds(compare.op, actual, compare.value)
    return Check(passed, describe(compare), render(actual))


def _actual(
    compare: model.Compare, row: Mapping[str, Any], facts: OrderFacts, now: datetime
) -> Any:
    name = compare.field.name
    if compare.field.kind is not Kind.DURATION:
        return row.get(name)
    start = row.get("created_at") if name == "age" else facts.last_item_update
    return None if start is None else now - start


def _holds(op: str, actual: Any, value: Any) -> bool:
    if op == "eq":
        return actual == value
    if op == "ne":
        return actual != value
    if op == "in":
        return actual in value
    if op == "not_in":
        return actual not in value
    if op == "gt":
        return actual > value
    if op == "gte":
        return actual >= value
    if op == "lt":
        return actual < value
    if op == "lte":
        return actual <= value
    if op == "contains":
        return value in actual
    if op == "matches":
        return re2_search(value, actual)
    raise ValueError(f"unknown operator {op!r}")


class _RE2:
    """Regex search with the semantics `rules check` validated and the warehouse query runs:
    RE2 (DuckDB's `regexp_matches`), whose time is linear in the text. Python's backtracking
    `re` would spin for ever on a pattern like `(.+)+X` that RE2 accepts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one connection, used by one thread at a time
        self._con: duckdb.DuckDBPyConnection | None = None

    def search(self, pattern: str, text: str) -> bool:
        with self._lock:
            if self._con is None:
                self._con = duckdb.connect(":memory:")
            row = self._con.execute("SELECT regexp_matches(?, ?)", [text, pattern]).fetchone()
        return bool(row and row[0])


_re2 = _RE2()


def re2_search(pattern: str, text: str) -> bool:
    """Whether RE2 finds `pattern` anywhere in `text` (as `matches` means in a rule)."""
    return _re2.search(pattern, text)


def describe(compare: model.Compare) -> str:
    """`age > 30d`, `status in [shopping_cart, editable]`, `design_name matches '^Mug'`."""
    op = _SYMBOLS.get(compare.op, compare.op.replace("_", " "))
    value = compare.value
    shown = f"[{', '.join(render(v) for v in value)}]" if isinstance(value, tuple) else None
    return f"{compare.field.name} {op} {shown or render(value, quote=True)}"


def render(value: Any, quote: bool = False) -> str:
    if value is None:
        return "null"
    if hasattr(value, "total_seconds"):
        return format_duration(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")  # 450.2800 -> 450.28, 100.0000 -> 100
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and quote and (not value or " " in value or value != value.strip()):
        return repr(value)
    return str(value)


# ---- rules ---------------------------------------------------------------------------------


@dataclass
class Verdict:
    """Would `rule` move this order, and why (not)."""

    rule: model.Rule
    matched: bool
    check: Check
    note: str = ""

    @property
    def would_move(self) -> bool:
        return self.matched and not self.note

    def lines(self) -> list[str]:
        target = self.rule.target_status
        if self.would_move:
            head = f"MATCH     {self.rule.id}: would set status {target}"
        elif self.matched:
            head = f"no change {self.rule.id}: {self.note}"
        else:
            failure = self.check.first_failure()
            reason = f"{failure.label} failed" if failure else "condition failed"
            if failure and failure.actual:
                reason += f" (actual: {failure.actual})"
            head = f"no match  {self.rule.id}: {reason}"
        flags = [f"priority {self.rule.priority}"]
        flags += ["dry run"] if self.rule.dry_run else []
        flags += ["disabled"] if not self.rule.enabled else []
        # the top `all of` of a `when` mapping only repeats the rule: show its parts
        root = self.check
        checks = root.children if root.label == "all of" else [root]
        body = [line for check in checks for line in check.lines(indent=2)]
        return [f"{head}  [{', '.join(flags)}]", *body]


def verdict(rule: model.Rule, facts: OrderFacts, now: datetime) -> Verdict:
    check = evaluate(rule.when, facts, now)
    note = ""
    if check.passed and facts.status == rule.target_status:
        note = f"already {rule.target_status}"
    elif not rule.enabled:
        note = "rule is disabled"
    return Verdict(rule, check.passed, check, note)


def why_not(condition: model.Condition, facts: OrderFacts, now: datetime) -> str:
    """One line on why `condition` does not hold for the order ('' when it does)."""
    check = evaluate(condition, facts, now)
    failure = check.first_failure()
    if failure is None:
        return ""
    actual = f" (actual: {failure.actual})" if failure.actual else ""
    return f"{failure.label}{actual}"


def summarize(condition: model.Condition) -> str:
    """A one-line reading of a condition, for `rules check` summaries."""
    match condition:
        case model.Compare():
            return describe(condition)
        case model.AllOf(conditions=parts):
            return " and ".join(_grouped(p) for p in parts)
        case model.AnyOf(conditions=parts):
            return " or ".join(_grouped(p) for p in parts)
        case model.Not(condition=inner):
            return f"not {_grouped(inner)}"
        case model.Items(quantifier=quantifier, condition=inner):
            name = "any_item" if quantifier == "any" else "all_items"
            return f"{name}({summarize(inner)})"
    raise TypeError(f"not a condition: {condition!r}")


def _grouped(condition: model.Condition) -> str:
    text = summarize(condition)
    return f"({text})" if isinstance(condition, model.AllOf | model.AnyOf) else text
