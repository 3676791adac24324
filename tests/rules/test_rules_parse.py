"""Validation of rules files: each problem is reported with its line and column."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from alter_pipeline.rules import RulesError, load_rules, model, parse_rules
from alter_pipeline.rules.fields import parse_duration

ROOT = Path(__file__).resolve().parents[2]

README_EXAMPLE = """\
rules:
  - id: cancel-stale-carts
    description: Cancel carts nobody touched for 30 days
    when:
      status: {in: [shopping_cart, editable]}
      age: {gt: 30d}
      any_item: {material_name_en: {eq: Cotton}}
    then:
      set_status: cancelled
"""


def problems(text: str) -> list[str]:
    """`LINE:COL: message` of every problem in `text`."""
    with pytest.raises(RulesError) as caught:
        parse_rules(textwrap.dedent(text), source="r.yaml")
    return [line.removeprefix("r.yaml:") for line in caught.value.lines()]


def one_rule(when: str, then: str = "{set_status: cancelled}") -> str:
    return f"rules:\n  - id: r\n    when: {when}\n    then: {then}\n"


def test_the_readme_example_parses_into_its_conditions():
    ruleset = parse_rules(README_EXAMPLE)
    (rule,) = ruleset.rules
    assert (rule.id, rule.target_status, rule.enabled, rule.dry_run) == (
        "cancel-stale-carts", "cancelled", True, False,
    )  # fmt: skip
    status, age, items = rule.when.conditions
    assert (status.field.name, status.op, status.value) == (
        "status", "in", ("shopping_cart", "editable"),
    )  # fmt: skip
    assert (age.field.name, age.op, age.value) == ("age", "gt", timedelta(days=30))
    assert isinstance(items, model.Items) and items.quantifier == "any"
    assert items.condition.field.name == "material_name_en"


def test_the_example_rules_file_is_valid_and_starts_by_cancelling_stale_carts():
    ruleset = load_rules(ROOT / "rules.example.yaml")
    first = ruleset.rules[0]
    assert first.id == "cancel-stale-carts" and first.target_status == "cancelled"


def test_unknown_field_is_reported_at_its_key():
    assert problems(one_rule("{colour: {eq: red}}")) == ["3:12: unknown field 'colour' of orders"]


def test_item_column_at_order_level_says_to_use_any_item():
    (message,) = problems(one_rule("{material_name_en: {eq: Cotton}}"))
    assert message.startswith("3:12: unknown field 'material_name_en' of orders")
    assert "put it under any_item or all_items" in message


def test_misspelt_field_gets_a_suggestion():
    (message,) = problems(one_rule("{total_valu: {gt: 5}}"))
    assert message.endswith("did you mean 'total_value'?")


def test_unknown_status_is_reported_at_the_value():
    (message,) = problems(one_rule("{status: {in: [shopping_cart, shipped]}}"))
    assert message.startswith("3:41: status: unknown status 'shipped'")


def test_unknown_target_status_is_reported():
    (message,) = problems(one_rule("{status: paid}", "{set_status: sent}"))
    assert message.startswith("4:24: unknown status 'sent'")


def test_a_move_the_transition_table_forbids_is_rejected():
    (message,) = problems(one_rule("{status: paid}", "{set_status: shopping_cart}"))
    assert message.startswith("4:24: rule 'r': moving paid to shopping_cart is not allowed")
    assert "paid may move to completed, cancelled" in message


def test_a_rule_that_could_move_orders_out_of_final_statuses_is_rejected():
    (message,) = problems(one_rule("{age: {gt: 30d}}"))
    assert "moving completed / cancelled to cancelled" not in message  # cancelled: no move
    assert "moving completed to cancelled is not allowed" in message


def test_negated_status_conditions_narrow_the_possible_moves():
    text = one_rule("{not: {status: {in: [completed, cancelled, processing, paid]}}}")
    assert parse_rules(text).rules[0].target_status == "cancelled"


def test_a_transitions_section_can_allow_a_move():
    text = "transitions:\n  paid: [shopping_cart]\n" + one_rule(
        "{status: paid}", "{set_status: shopping_cart}"
    )
    ruleset = parse_rules(text)
    assert ruleset.transitions.allowed("paid", "shopping_cart")
    assert not ruleset.transitions.allowed("paid", "completed")  # the row was replaced
    assert ruleset.transitions.allowed("editable", "cancelled")  # other rows kept


def test_a_transitions_section_can_forbid_a_move_rules_rely_on():
    text = "transitions:\n  editable: []\n" + one_rule("{status: editable}")
    (message,) = problems(text)
    assert "moving editable to cancelled is not allowed" in message
    assert "editable may move to nothing (final)" in message


def test_bad_regex_is_reported_at_the_pattern():
    (message,) = problems(one_rule('{design_name: {matches: "(unclosed"}}'))
    assert message.startswith("3:35: bad regex '(unclosed'")


def test_regex_the_warehouse_cannot_run_is_reported():
    (message,) = problems(one_rule('{design_name: {matches: "(?<=Mr) Smith"}}'))
    assert "for the warehouse (RE2)" in message


def test_duplicate_rule_id_points_at_the_second_one():
    text = """\
    rules:
      - id: same
        when: {status: editable}
        then: {set_status: cancelled}
      - id: same
        when: {status: shopping_cart}
        then: {set_status: cancelled}
    """
    assert problems(text) == ["5:9: duplicate rule id 'same' (first at line 2)"]


def test_operator_that_does_not_apply_to_the_field_kind_is_reported():
    (message,) = problems(one_rule("{age: {contains: 3d}}"))
    assert message.startswith("3:18: operator 'contains' does not apply to age (a duration)")
    assert message.endswith("use one of: gt, gte, lt, lte")


def test_unknown_operator_gets_a_suggestion():
    (message,) = problems(one_rule("{item_count: {gte: 1, grater: 2}}"))
    assert message == "3:33: unknown operator 'grater'; did you mean 'gte'?"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("{item_count: {gt: many}}", "item_count: expected an integer, got 'many'"),
        ("{total_value: {gt: 1.23456}}", "total_value: 1.23456 has more than 4 decimal places"),
        ("{design_name: {eq: 42}}", "design_name: expected a string, got 42 (quote it: '42')"),
        ("{is_seen_by_owner: {eq: maybe}}", "is_seen_by_owner: expected true or false"),
        ("{age: {gt: 30}}", "age: expected a duration like 30d or 12h, got 30"),
        ("{idle: {gt: 3 days}}", "idle: not a duration: '3 days'"),
        ("{created_at: {gt: yesterday}}", "created_at: expected a timestamp"),
        ("{item_count: {in: 3}}", "expected values of in (a list), got 3"),
        ("{item_count: {in: []}}", "in needs at least one value"),
        ("{item_count: [1, 2]}", "item_count: to test several values write {in: [...]}"),
    ],
)
def test_wrong_value_type_is_reported(condition, expected):
    (message,) = problems(one_rule(condition))
    assert expected in message


def test_every_problem_of_a_file_is_reported_in_one_pass():
    text = """\
    max_transitions_per_run: lots
    rules:
      - id: a
        when:
          status: {in: [shopping_cart, shipped]}
          age: {gt: 30x}
        then: {set_status: cancelled}
      - id: b
        priorty: 3
        when: {status: editable}
        then: {set_quantity: 2}
    """
    found = problems(text)
    assert [line.split(":")[0] for line in found] == ["1", "5", "6", "9", "11"]


def test_invalid_yaml_is_reported_with_its_position():
    (message,) = problems("rules:\n  - id: a\n    when: {status: [paid\n")
    assert message.startswith("4:1: not valid YAML")


def test_duplicate_key_in_a_condition_is_reported():
    text = "rules:\n  - id: a\n    when:\n      status: paid\n      status: editable\n"
    text += "    then: {set_status: cancelled}\n"
    assert problems(text) == ["5:7: duplicate key 'status' (first at line 4)"]


def test_set_quantity_is_not_supported_yet():
    (message,) = problems(one_rule("{status: editable}", "{set_quantity: 2}"))
    assert message == "4:12: set_quantity is not supported yet: use set_status"


def test_missing_file_is_a_problem_at_line_one(tmp_path):
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path / "absent.yaml")
    assert caught.value.lines()[0].startswith(f"{tmp_path / 'absent.yaml'}:1:1: ")


def test_values_keep_their_exact_type():
    when = (
        "{status: editable, total_value: {gte: 99.99}, created_at: {lt: 2026-11-01}, "
        "is_seen_by_owner: false, design_name: {contains: Mug}}"
    )
    parts = parse_rules(one_rule(when)).rules[0].when.conditions
    assert [p.value for p in parts] == [
        "editable", Decimal("99.99"), datetime(2026, 11, 1, tzinfo=UTC), False, "Mug",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("2w", timedelta(weeks=2)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_durations_are_read_with_their_units(text, expected):
    assert parse_duration(text) == expected


def test_rule_options_are_read_and_rank_by_priority_then_file_order():
    text = """\
    rules:
      - id: low
        when: {status: editable}
        then: {set_status: cancelled}
      - id: high
        priority: 5
        dry_run: true
        max_per_run: 7
        when: {status: editable}
        then: {set_status: processing}
      - id: off
        enabled: false
        when: {status: editable}
        then: {set_status: cancelled}
    """
    ruleset = parse_rules(textwrap.dedent(text))
    assert [r.id for r in ruleset.enabled] == ["high", "low"]
    high = ruleset.rule("high")
    assert (high.priority, high.dry_run, high.max_per_run) == (5, True, 7)
