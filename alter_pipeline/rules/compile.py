"""Compile a rule's condition to one DuckDB query over the `orders` and `order_items` views.

Values always travel as bound parameters (`$p0`, `$p1`, ...) cast to the column's type; column
names come only from the whitelist in fields.py. Each comparison is wrapped in
`coalesce(..., false)` so SQL's three-valued logic collapses to two values, matching the Python
evaluator (evaluate.py): a missing value never satisfies a comparison, and `not` of a
comparison on a missing value holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from alter_pipeline.rules import model
from alter_pipeline.rules.fields import Kind

_SQL_OPERATORS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
# `age > 30d` means `created_at < now - 30d`: comparing timestamps keeps the test exact and lets
# DuckDB use Parquet min/max statistics, where interval arithmetic per row would not.
_DURATION_AS_TIMESTAMP = {"gt": "<", "gte": "<=", "lt": ">", "lte": ">="}
_IDLE_JOIN = """
    LEFT JOIN (
        SELECT "order_id", max("updated_at") AS last_item_update
        FROM order_items GROUP BY "order_id"
    ) ia ON ia."order_id" = o."order_id\""""


@dataclass(frozen=True)
class Query:
    sql: str
    params: dict[str, Any]


class _Compiler:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.params: dict[str, Any] = {}
        self.uses_idle = False

    def param(self, value: Any, sql_type: str | None = None) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"CAST(${name} AS {sql_type})" if sql_type else f"${name}"

    def condition(self, condition: model.Condition, alias: str) -> str:
        match condition:
            case model.Compare():
                return f"coalesce({self.compare(condition, alias)}, false)"
            case model.AllOf(conditions=parts):
                return "(" + " AND ".join(self.condition(p, alias) for p in parts) + ")"
            case model.AnyOf(conditions=parts):
                return "(" + " OR ".join(self.condition(p, alias) for p in parts) + ")"
            case model.Not(condition=inner):
                return f"(NOT {self.condition(inner, alias)})"
            case model.Items():
                return self.items(condition)
        raise TypeError(f"not a condition: {condition!r}")

    def compare(self, compare: model.Compare, alias: str) -> str:
        field, op, value = compare.field, compare.op, compare.value
        if field.kind is Kind.DURATION:
            return self.duration(compare)
        column = f'{alias}."{field.name}"'  # a whitelisted name, never user text
        if op in _SQL_OPERATORS:
            return f"{column} {_SQL_OPERATORS[op]} {self.param(value, field.sql_type)}"
        if op in ("in", "not_in"):
            values = ", ".join(self.param(v, field.sql_type) for v in value)
            return f"{column} {'NOT IN' if op == 'not_in' else 'IN'} ({values})"
        if op == "contains":
            return f"contains({column}, {self.param(value, 'VARCHAR')})"
        if op == "matches":
            return f"regexp_matches({column}, {self.param(value, 'VARCHAR')})"
        raise ValueError(f"operator {op!r} cannot be compiled")

    def duration(self, compare: model.Compare) -> str:
        if compare.field.name == "age":
            column = 'o."created_at"'
        else:
            self.uses_idle = True
            column = "ia.last_item_update"
        cutoff = self.param(self.now - compare.value, "TIMESTAMPTZ")
        return f"{column} {_DURATION_AS_TIMESTAMP[compare.op]} {cutoff}"

    def items(self, items: model.Items) -> str:
        inner = self.condition(items.condition, "i")
        if items.quantifier == "any":
            return f'o."order_id" IN (SELECT i."order_id" FROM order_items i WHERE {inner})'
        # every item holds <=> no item fails; an order without items holds vacuously
        return f'o."order_id" NOT IN (SELECT i."order_id" FROM order_items i WHERE NOT {inner})'


def compile_condition(condition: model.Condition, now: datetime) -> Query:
    """`SELECT order_id, status` of every order satisfying `condition`, by order_id."""
    compiler = _Compiler(now)
    where = compiler.condition(condition, "o")
    joins = _IDLE_JOIN if compiler.uses_idle else ""
    sql = f'SELECT o."order_id", o."status" FROM orders o{joins}\nWHERE {where}\nORDER BY 1'
    return Query(sql, compiler.params)


def compile_rule(rule: model.Rule, now: datetime) -> Query:
    """Orders the rule would move: its condition holds and the order is not already there."""
    compiler = _Compiler(now)
    where = compiler.condition(rule.when, "o")
    target = compiler.param(rule.target_status, "VARCHAR")
    joins = _IDLE_JOIN if compiler.uses_idle else ""
    sql = (
        f'SELECT o."order_id", o."status" FROM orders o{joins}\n'
        f'WHERE {where}\n  AND coalesce(o."status" <> {target}, false)\nORDER BY 1'
    )
    return Query(sql, compiler.params)


def find_matches(
    con: duckdb.DuckDBPyConnection, rules: Iterable[model.Rule], now: datetime
) -> dict[str, list[tuple[int, str]]]:
    """(order_id, status) of the orders each rule would move, one query per rule."""
    found: dict[str, list[tuple[int, str]]] = {}
    for rule in rules:
        query = compile_rule(rule, now)
        found[rule.id] = con.execute(query.sql, query.params).fetchall()
    return found
