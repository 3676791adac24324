"""The contract's field semantics, decided once in `contract.fields`, hold for every reader:
the typed models, both flattening paths and the rules' facts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from alter_pipeline.api.models import Money, Order, OrderSummary
from alter_pipeline.contract import example, fields
from alter_pipeline.lake import fast_flatten, flatten
from alter_pipeline.rules.evaluate import OrderFacts


def _listed() -> dict[str, Any]:
    text = json.dumps(example("orders_list.response"))
    return json.loads(text, parse_float=Decimal)["order"]["items"][0]


def _detail() -> dict[str, Any]:
    order = _listed()
    order["designName"] = order.pop("customizerName")
    del order["isSeenByOwner"]
    return order


def test_a_naive_timestamp_means_utc() -> None:
    assert fields.parse_timestamp("2026-02-09 01:55:49.000000") == datetime(
        2026, 2, 9, 1, 55, 49, tzinfo=UTC
    )


def test_an_offset_is_converted_to_utc() -> None:
    parsed = fields.parse_timestamp("2026-02-09T03:55:49+02:00")
    assert parsed.tzinfo is UTC and parsed.hour == 1


def test_as_utc_reads_naive_as_utc_and_converts_aware() -> None:
    warsaw = timezone(timedelta(hours=1))
    assert fields.as_utc(datetime(2026, 1, 1, 12)) == datetime(2026, 1, 1, 12, tzinfo=UTC)
    converted = fields.as_utc(datetime(2026, 1, 1, 12, tzinfo=warsaw))
    assert (converted.tzinfo, converted.hour) == (UTC, 11)


def test_models_and_flatten_read_a_timestamp_alike() -> None:
    raw = _listed()
    raw["createdAt"] = "2026-02-09T03:55:48+02:00"
    model = OrderSummary.from_json(raw).created_at
    row, _ = flatten.order_row(raw)
    assert model == row[4] and model.tzinfo is UTC and row[4].tzinfo is UTC


def test_money_is_exact_and_a_float_is_refused() -> None:
    assert fields.exact_number(Decimal("17.50")) == Decimal("17.50")
    assert fields.exact_number(5) == Decimal(5)
    with pytest.raises(TypeError, match="float"):
        fields.exact_number(17.5)
    with pytest.raises(TypeError, match="expected a number"):
        fields.exact_number(True)


def test_models_and_flatten_both_refuse_float_money() -> None:
    raw = _listed()
    raw["totalPrice"] = {"value": 17.5, "currency": "PLN"}
    with pytest.raises(TypeError, match="float"):
        Money.from_json(raw["totalPrice"])
    with pytest.raises(flatten.RecordError, match=r"totalPrice\.value"):
        flatten.order_row(raw)


def test_a_boolean_is_not_an_id() -> None:
    assert fields.is_id(7) and not fields.is_id(True) and not fields.is_id("7")


def test_design_name_reads_either_shape() -> None:
    assert fields.design_name(_listed()) == _listed()["customizerName"]
    assert fields.design_name(_detail()) == _detail()["designName"]


def test_merge_detail_takes_what_the_list_said_of_the_missing_keys() -> None:
    listed = _listed() | {"isSeenByOwner": True}
    merged = fields.merge_detail(_detail(), listed)
    assert merged["isSeenByOwner"] is True
    assert Order.from_json(merged).design_name == _detail()["designName"]


def test_merge_detail_reads_a_lake_row_by_column_name() -> None:
    merged = fields.merge_detail(_detail(), {"order_id": 1, "is_seen_by_owner": False})
    assert merged["isSeenByOwner"] is False


def test_merge_detail_keeps_what_the_detail_carries_even_null() -> None:
    detail = _detail() | {"isSeenByOwner": None}
    assert fields.merge_detail(detail, {"isSeenByOwner": True})["isSeenByOwner"] is None
    assert "isSeenByOwner" not in fields.merge_detail(_detail(), None)


def test_rule_facts_of_a_detail_keep_the_synced_value() -> None:
    facts = OrderFacts.from_raw(_detail(), {"is_seen_by_owner": True})
    assert facts.order["is_seen_by_owner"] is True


def test_both_flatteners_take_their_money_range_from_the_contract() -> None:
    raw = _listed()
    raw["totalPrice"] = {"value": fields.MONEY_LIMIT, "currency": "PLN"}
    with pytest.raises(flatten.RecordError, match="out of range"):
        flatten.order_row(raw)
    body = json.dumps({"order": {"items": [raw], "total": 1}}, default=str)
    body = body.replace(f'"{fields.MONEY_LIMIT}"', str(fields.MONEY_LIMIT))
    decoded = fast_flatten.decode_orders_page(body.encode())
    assert decoded is None or decoded.flat is None  # the fast path leaves it to flatten


def test_a_measure_beyond_its_column_is_rejected_not_a_crash() -> None:
    # DECIMAL(18, 6) holds less than MEASURE_LIMIT; Arrow refused the batch before.
    raw = _listed()
    raw["productItems"][0]["variant"]["volume"] = Decimal(10) ** 12
    flat = flatten.flatten_orders([raw])
    assert flat.orders.num_rows == 0
    assert "variant.volume" in flat.rejected[0].reason
