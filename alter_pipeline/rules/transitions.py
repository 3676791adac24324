"""Which status moves a rule may make, and which statuses a rule's condition can start from.

The default table follows the contract's life cycle (cart -> checkout -> paid -> fulfilled) and
never lets an order leave `completed` or `cancelled`. A `transitions:` section in the rules file
replaces the row of each status it names; statuses it leaves out keep their default row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

from alter_pipeline.contract import ORDER_STATUSES
from alter_pipeline.rules import model
from alter_pipeline.rules.fields import Kind

ALL_STATUSES = frozenset(ORDER_STATUSES)

DEFAULT_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "shopping_cart": ("editable", "processing", "cancelled"),
    "editable": ("shopping_cart", "processing", "cancelled"),
    "processing": ("paid", "cancelled"),
    "paid": ("completed", "cancelled"),
    "completed": (),
    "cancelled": (),
}


@dataclass(frozen=True)
class TransitionTable:
    moves: Mapping[str, frozenset[str]]

    @classmethod
    def default(cls) -> TransitionTable:
        return cls({s: frozenset(t) for s, t in DEFAULT_TRANSITIONS.items()})

    def with_overrides(self, rows: Mapping[str, tuple[str, ...]]) -> TransitionTable:
        return TransitionTable({**self.moves, **{s: frozenset(t) for s, t in rows.items()}})

    def allowed(self, from_status: str, to_status: str) -> bool:
        return to_status in self.moves.get(from_status, frozenset())

    def targets(self, from_status: str) -> list[str]:
        """Allowed targets in the contract's status order (stable for messages and tables)."""
        allowed = self.moves.get(from_status, frozenset())
        return [s for s in ORDER_STATUSES if s in allowed]

    def markdown(self) -> str:
        lines = ["| from | may move to |", "| --- | --- |"]
        for status in ORDER_STATUSES:
            targets = ", ".join(f"`{t}`" for t in self.targets(status)) or "— (final)"
            lines.append(f"| `{status}` | {targets} |")
        return "\n".join(lines)


# ---- static analysis of conditions --------------------------------------------------------


def possible_statuses(condition: model.Condition) -> frozenset[str]:
    """Statuses an order may have and still satisfy `condition` (a safe over-approximation).

    Exact when the condition only tests `status`; anything else it tests may or may not hold,
    so it narrows nothing. Used to reject, at check time, rules that could make a forbidden move.
    """
    match condition:
        case model.Compare(field=f, op=op, value=value) if f.kind is Kind.STATUS:
            return _status_compare(op, value)
        case model.AllOf(conditions=parts):
            result = ALL_STATUSES
            for part in parts:
                result &= possible_statuses(part)
            return result
        case model.AnyOf(conditions=parts):
            return frozenset().union(*(possible_statuses(p) for p in parts))
        case model.Not(condition=inner) if _status_only(inner):
            return ALL_STATUSES - possible_statuses(inner)
    return ALL_STATUSES


def _status_compare(op: str, value: object) -> frozenset[str]:
    # The rule parser checked `value`: a list of statuses for in/not_in, else one status.
    listed = op in ("in", "not_in")
    values = frozenset(cast(Iterable[str], value) if listed else {cast(str, value)})
    return values if op in ("eq", "in") else ALL_STATUSES - values


def _status_only(condition: model.Condition) -> bool:
    match condition:
        case model.Compare(field=f):
            return f.kind is Kind.STATUS
        case model.AllOf(conditions=parts) | model.AnyOf(conditions=parts):
            return all(_status_only(p) for p in parts)
        case model.Not(condition=inner):
            return _status_only(inner)
    return False


def forbidden_moves(rule: model.Rule, table: TransitionTable) -> list[str]:
    """Statuses `rule` could move an order out of although the table forbids it."""
    target = rule.target_status
    starts = possible_statuses(rule.when) - {target}  # already there: not a move
    return [s for s in ORDER_STATUSES if s in starts and not table.allowed(s, target)]
