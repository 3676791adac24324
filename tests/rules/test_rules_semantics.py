"""Matching semantics: the compiled SQL and the Python evaluator agree, operator by operator.

The property tests draw random orders and items (with missing values) and random conditions
over them, and compare the order ids DuckDB selects with those the Python evaluator accepts.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rules_helpers import raw_item, raw_order

from alter_pipeline.contract import ORDER_STATUSES
from alter_pipeline.lake import schemas
from alter_pipeline.lake.flatten import flatten_orders
from alter_pipeline.rules import model, parse_rules
from alter_pipeline.rules.compile import compile_condition, compile_rule
from alter_pipeline.rules.evaluate import OrderFacts, matches, verdict
from alter_pipeline.rules.fields import ITEM_FIELDS, OPERATORS, ORDER_FIELDS, Kind
from alter_pipeline.rules.transitions import possible_statuses

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

# ---- random data ----------------------------------------------------------------------------

TEXTS = ["Cotton", "Organic cotton", "Ceramic", "Mug 450ml", "Łódź", "", "cotton "]
PATTERNS = ["^Cot", "ton$", "(?i)cotton", "a|e", "^$", "[0-9]+ml", "ó", "^.{6}$"]
SUBSTRINGS = ["Cot", "cotton", "", "ml", "ź", "x"]
STAMPS = [NOW - timedelta(days=d, hours=h) for d in (0, 1, 29, 30, 31, 200) for h in (0, 5)]
DURATIONS = [timedelta(days=d) for d in (0, 1, 30, 31, 200)] + [timedelta(hours=5)]
MONEY = [Decimal(v) for v in ("0", "5", "5.5", "99.9999", "100", "-3.25")]
INTS = [0, 1, 2, 3, 10, -1]


def maybe(values: list[Any]) -> st.SearchStrategy[Any]:
    return st.sampled_from([None, *values])  # one draw: far faster than one_of(none(), ...)


ORDER_ROW = st.fixed_dictionaries(
    {
        "status": st.sampled_from(ORDER_STATUSES),
        "is_seen_by_owner": maybe([True, False]),
        "created_at": maybe(STAMPS),
        "design_name": maybe(TEXTS),
        "product_group_id": maybe(INTS),
        "total_value": maybe(MONEY),
        "total_currency": maybe(["EUR", "PLN"]),
        "item_count": st.sampled_from(INTS),
    }
)
ITEM_ROW = st.fixed_dictionaries(
    {
        "material_name_en": maybe(TEXTS),
        "stock_quantity": maybe(INTS),
        "quantity": maybe(INTS),
        "unit_price_value": maybe(MONEY),
        "updated_at": maybe(STAMPS),
    }
)


def _numbered(drawn: list[tuple[dict, list[dict]]]) -> tuple[list[dict], list[dict]]:
    orders, items = [], []
    for order_id, (order, order_items) in enumerate(drawn, start=1):
        orders.append({**order, "order_id": order_id})
        for n, item in enumerate(order_items):
            items.append({**item, "order_id": order_id, "order_item_id": order_id * 10 + n})
    return orders, items


stores = st.lists(st.tuples(ORDER_ROW, st.lists(ITEM_ROW, max_size=3)), max_size=10).map(_numbered)


# ---- random conditions ----------------------------------------------------------------------

ORDER_TESTED = ["status", "is_seen_by_owner", "created_at", "design_name", "product_group_id",
                "total_value", "total_currency", "item_count", "age", "idle"]  # fmt: skip
ITEM_TESTED = ["material_name_en", "stock_quantity", "quantity", "unit_price_value", "updated_at"]
VALUES: dict[Kind, list[Any]] = {
    Kind.STATUS: list(ORDER_STATUSES),
    Kind.BOOL: [True, False],
    Kind.TIME: STAMPS,
    Kind.TEXT: [*TEXTS, "EUR", "PLN"],
    Kind.INT: INTS,
    Kind.DECIMAL: MONEY,
    Kind.DURATION: DURATIONS,
}


@st.composite
def comparisons(draw: st.DrawFn, fields: dict[str, Any], names: list[str]) -> model.Compare:
    field = fields[draw(st.sampled_from(names))]
    op = draw(st.sampled_from(OPERATORS[field.kind]))
    if op in ("in", "not_in"):
        value: Any = tuple(draw(st.lists(st.sampled_from(VALUES[field.kind]), min_size=1)))
    elif op == "contains":
        value = draw(st.sampled_from(SUBSTRINGS))
    elif op == "matches":
        value = draw(st.sampled_from(PATTERNS))
    else:
        value = draw(st.sampled_from(VALUES[field.kind]))
    return model.Compare(field, op, value)


def combined(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda c: model.AllOf(tuple(c))),
            st.lists(inner, min_size=1, max_size=3).map(lambda c: model.AnyOf(tuple(c))),
            inner.map(model.Not),
        ),
        max_leaves=5,
    )


item_conditions = combined(comparisons(ITEM_FIELDS, ITEM_TESTED))
quantified = st.builds(model.Items, st.sampled_from(["any", "all"]), item_conditions)
conditions = combined(st.one_of(comparisons(ORDER_FIELDS, ORDER_TESTED), quantified))


# ---- the two engines ------------------------------------------------------------------------


def arrow(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(
        [{name: row.get(name) for name in schema.names} for row in rows], schema=schema
    )


@pytest.fixture(scope="module")
def con():
    with duckdb.connect(":memory:") as connection:
        yield connection


def sql_ids(con, orders, items, condition) -> list[int]:
    con.register("orders", arrow(orders, schemas.ORDERS))
    con.register("order_items", arrow(items, schemas.ORDER_ITEMS))
    query = compile_condition(condition, NOW)
    return [row[0] for row in con.execute(query.sql, query.params).fetchall()]


def python_ids(orders, items, condition) -> list[int]:
    ids = []
    for order in orders:
        own = tuple(i for i in items if i["order_id"] == order["order_id"])
        if matches(condition, OrderFacts(order, own), NOW):
            ids.append(order["order_id"])
    return ids


def examples(count: int) -> settings:
    return settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


@examples(120)
@given(store=stores, condition=conditions)
def test_compiled_sql_selects_exactly_the_orders_the_python_evaluator_accepts(
    con, store, condition
):
    orders, items = store
    assert sql_ids(con, orders, items, condition) == python_ids(orders, items, condition)


@examples(50)
@given(store=stores, condition=comparisons(ORDER_FIELDS, ORDER_TESTED))
def test_a_single_comparison_agrees_between_sql_and_python(con, store, condition):
    orders, items = store
    assert sql_ids(con, orders, items, condition) == python_ids(orders, items, condition)


@examples(100)
@given(store=stores, condition=conditions)
def test_possible_statuses_includes_the_status_of_every_matching_order(store, condition):
    # `rules check` rejects forbidden moves from this set: it must never miss a status.
    orders, items = store
    allowed = possible_statuses(condition)
    for order_id in python_ids(orders, items, condition):
        assert orders[order_id - 1]["status"] in allowed


# ---- operators, one by one, through the YAML -----------------------------------------------

ORDERS = [
    raw_order(1, status="shopping_cart", created="2026-09-01T00:00:00Z", design="Mug 450ml",
              items=[raw_item(11, material="Cotton", stock=0, quantity=2,
                              updated="2026-09-02 00:00:00")]),
    raw_order(2, status="editable", created="2026-11-19T12:00:00Z", design="Men’s T-Shirt",
              items=[raw_item(21, material="Ceramic", stock=5, updated="2026-11-20 06:00:00"),
                     raw_item(22, material="Cotton", stock=7, updated="2026-10-01 00:00:00")]),
    raw_order(3, status="paid", created="2026-01-01T00:00:00Z", design=None, items=[],
              currency=None),
]  # fmt: skip


@pytest.fixture(scope="module")
def warehouse():
    flat = flatten_orders(ORDERS)
    with duckdb.connect(":memory:") as connection:
        connection.register("orders", pa.Table.from_batches([flat.orders]))
        connection.register("order_items", pa.Table.from_batches([flat.items]))
        yield connection


def matched(warehouse, when: str) -> list[int]:
    """Ids the SQL selects for `when` (as YAML); asserts the Python evaluator agrees."""
    text = f"rules:\n  - id: t\n    when: {when}\n    then: {{set_status: processing}}\n"
    allow = "{completed: [processing], cancelled: [processing], paid: [processing]}"
    text = f"transitions: {allow}\n" + text
    rule = parse_rules(textwrap.dedent(text)).rules[0]
    query = compile_condition(rule.when, NOW)
    ids = [row[0] for row in warehouse.execute(query.sql, query.params).fetchall()]
    python = [r["id"] for r in ORDERS if matches(rule.when, OrderFacts.from_raw(r), NOW)]
    assert ids == python
    return ids


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("{status: {eq: editable}}", [2]),
        ("{status: editable}", [2]),
        ("{status: {ne: editable}}", [1, 3]),
        ("{status: {in: [shopping_cart, paid]}}", [1, 3]),
        ("{status: {not_in: [shopping_cart, paid]}}", [2]),
        ("{item_count: {gt: 1}}", [2]),
        ("{item_count: {gte: 1}}", [1, 2]),
        ("{item_count: {lt: 1}}", [3]),
        ("{item_count: {lte: 1}}", [1, 3]),
        ("{total_value: {gte: 10}}", [1, 2]),
        ("{total_value: {gt: 10, lt: 10.0001}}", []),
        ("{design_name: {contains: T-Shirt}}", [2]),
        ("{design_name: {matches: '^Mug \\d+ml$'}}", [1]),
        ("{design_name: {ne: Mug 450ml}}", [2]),  # order 3 has no design: null never matches
        ("{not: {design_name: {eq: Mug 450ml}}}", [2, 3]),  # ... but `not` of it does
        ("{total_currency: {in: [EUR]}}", [1, 2]),
        ("{is_seen_by_owner: false}", [1, 2, 3]),
        ("{created_at: {lt: 2026-06-01}}", [3]),
        ("{age: {gt: 30d}}", [1, 3]),
        ("{age: {lte: 1d}}", [2]),
        ("{idle: {gt: 30d}}", [1]),  # order 2's newest item is hours old; 3 has no items
        ("{idle: {lt: 1d}}", [2]),
        ("{any_item: {material_name_en: {eq: Cotton}}}", [1, 2]),
        ("{all_items: {material_name_en: {eq: Cotton}}}", [1, 3]),  # 3: no items, vacuous
        ("{any_item: {stock_quantity: {gte: 5}, material_name_en: Cotton}}", [2]),
        ("{all_items: {stock_quantity: {gte: 1}}}", [2, 3]),
        ("{any: [{status: paid}, {item_count: {gt: 1}}]}", [2, 3]),
        ("{all: [{status: {ne: paid}}, {any_item: {quantity: {gte: 2}}}]}", [1]),
    ],
)
def test_each_operator_selects_what_it_says(warehouse, when, expected):
    assert matched(warehouse, when) == expected


def test_values_are_bound_as_parameters_never_pasted_into_sql(warehouse):
    hostile = "x' OR 1=1; DROP TABLE orders; --"
    text = f'rules:\n  - id: t\n    when: {{status: editable, design_name: {{eq: "{hostile}"}}}}'
    rule = parse_rules(text + "\n    then: {set_status: cancelled}\n").rules[0]
    query = compile_rule(rule, NOW)
    assert hostile not in query.sql and hostile in query.params.values()
    assert warehouse.execute(query.sql, query.params).fetchall() == []
    assert warehouse.execute("SELECT count(*) FROM orders").fetchone() == (3,)


def test_a_rule_never_selects_orders_already_in_its_target_status(warehouse):
    text = "rules:\n  - id: t\n    when: {status: {in: [editable, shopping_cart]}}\n"
    rule = parse_rules(text + "    then: {set_status: editable}\n").rules[0]
    query = compile_rule(rule, NOW)
    assert warehouse.execute(query.sql, query.params).fetchall() == [(1, "shopping_cart")]


def test_explanation_names_the_failed_condition_and_its_actual_value():
    text = """\
    rules:
      - id: stale
        when:
          status: {in: [shopping_cart, editable]}
          age: {gt: 30d}
          any_item: {material_name_en: {eq: Cotton}}
        then: {set_status: cancelled}
    """
    rule = parse_rules(textwrap.dedent(text)).rules[0]
    lines = verdict(rule, OrderFacts.from_raw(ORDERS[1]), NOW).lines()
    assert lines[0].startswith("no match  stale: age > 30d failed (actual: 1d)")
    assert "✓ status in [shopping_cart, editable]  (actual: editable)" in lines[1]
    assert "✗ age > 30d  (actual: 1d)" in lines[2]
    yes = verdict(rule, OrderFacts.from_raw(ORDERS[0]), NOW)
    assert yes.would_move and yes.lines()[0].startswith("MATCH     stale: would set status")
