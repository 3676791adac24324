"""The parsed form of a rules file: plain frozen dataclasses, no behaviour.

A condition is a small tree: comparisons of one field with one operator, combined by `AllOf`,
`AnyOf` and `Not`, with `Items` quantifying a condition over an order's items. Every node keeps
the position it came from in the YAML, so later checks can point at the offending line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alter_pipeline.rules.fields import Field

if TYPE_CHECKING:
    from alter_pipeline.rules.transitions import TransitionTable

DEFAULT_MAX_TRANSITIONS_PER_RUN = 100


@dataclass(frozen=True, order=True)
class Mark:
    """A 1-based line and column in the rules file."""

    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    mark: Mark
    message: str

    def format(self, source: str) -> str:
        return f"{source}:{self.mark}: {self.message}"


# ---- conditions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    """`field op value`; `value` is already typed (Decimal, datetime, timedelta, list...)."""

    field: Field
    op: str
    value: Any
    mark: Mark = dataclasses.field(default=Mark(0, 0), compare=False)


@dataclass(frozen=True)
class AllOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    condition: Condition


@dataclass(frozen=True)
class Items:
    """`any_item` (quantifier="any") or `all_items` (quantifier="all") over order_items rows.

    `all_items` holds for an order without items, as "every item of an empty list" does.
    """

    quantifier: str
    condition: Condition


Condition = Compare | AllOf | AnyOf | Not | Items


# ---- actions and rules --------------------------------------------------------------------


@dataclass(frozen=True)
class SetStatus:
    status: str
    mark: Mark = dataclasses.field(default=Mark(0, 0), compare=False)


Action = SetStatus  # `set_quantity` will join here


@dataclass(frozen=True)
class Trigger:
    """`on: {source, type}` with `order_id: path`: the rule acts on inbound events
    (alter_pipeline/rules/triggers.py), never on a schedule."""

    source: str
    types: tuple[str, ...]
    order_id_path: tuple[str, ...]
    mark: Mark = dataclasses.field(default=Mark(0, 0), compare=False)

    @property
    def path_text(self) -> str:
        return ".".join(self.order_id_path)


@dataclass(frozen=True)
class Rule:
    id: str
    when: Condition
    then: Action
    description: str = ""
    enabled: bool = True
    priority: int = 0
    dry_run: bool = False
    max_per_run: int | None = None
    # Names of storefronts.yaml this rule is limited to; empty: every storefront.
    storefronts: tuple[str, ...] = ()
    # Set for an event-driven rule: it acts on inbound events only.
    on: Trigger | None = None
    index: int = 0  # position in the file: breaks priority ties
    mark: Mark = dataclasses.field(default=Mark(0, 0), compare=False)

    @property
    def target_status(self) -> str:
        return self.then.status

    @property
    def rank(self) -> tuple[int, int]:
        """Sort key: higher priority first, then earlier in the file."""
        return (-self.priority, self.index)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    transitions: TransitionTable
    max_transitions_per_run: int = DEFAULT_MAX_TRANSITIONS_PER_RUN
    source: Path | None = None
    content_hash: str = ""

    @property
    def enabled(self) -> tuple[Rule, ...]:
        """The enabled rules a run evaluates over the warehouse (not the event-driven ones)."""
        return tuple(
            sorted((r for r in self.rules if r.enabled and r.on is None), key=lambda r: r.rank)
        )

    @property
    def event_rules(self) -> tuple[Rule, ...]:
        """The enabled rules with an `on:` trigger, in the order they win an event."""
        return tuple(
            sorted((r for r in self.rules if r.enabled and r.on is not None), key=lambda r: r.rank)
        )

    def rule(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.id == rule_id)

    def scoped(self, applies: Callable[[tuple[str, ...]], bool]) -> RuleSet:
        """The rules whose `storefronts` scope `applies` to the run's storefront."""
        return dataclasses.replace(
            self, rules=tuple(r for r in self.rules if applies(r.storefronts))
        )
