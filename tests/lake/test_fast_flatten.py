"""The Arrow fast path gives exactly what the Python path gives, or hands the page to it.

Every case runs both paths over the same page bytes: the Python path as the sync always ran it
(`json.loads` with Decimal, `flatten_orders`), the fast path as the sync runs it now
(`decode_orders_page` in the pager, `flatten_order_pages` in the consumer). Pages come from the
emulator over loopback, clean and with its odd-record fault modes, plus compact variants with
one odd value each, built from a real page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alter_pipeline.api import AlterClient
from alter_pipeline.api.paging import FastPage
from alter_pipeline.api.paging import pages as paging_pages
from alter_pipeline.emulator.faults import KINDS, BadRecordFault, ContractBreakFault, HugePageFault
from alter_pipeline.lake import Lake, fast_flatten
from alter_pipeline.lake.fast_flatten import decode_orders_page, flatten_order_pages
from alter_pipeline.lake.flatten import FlatOrders, flatten_orders
from alter_pipeline.sync import run_sync


def page_bodies(emulator: Any, limit: int = 50, step: int = 49) -> list[bytes]:
    """Raw bodies of the whole order listing, as the pager requests them."""
    bodies = []
    with httpx.Client(base_url=emulator.base_url, headers=emulator.headers) as http:
        offset, total = 0, 1
        while offset < total:
            params = {"offset": offset, "limit": limit, "order_by": "id", "direction": "ASC"}
            reply = http.get("/customer-orders", params=params)
            bodies.append(reply.content)
            total = json.loads(reply.content)["order"]["total"]
            offset += step
    return bodies


def python_path(body: bytes, keep: list[int] | None) -> FlatOrders:
    rows = json.loads(body, parse_float=Decimal)["order"]["items"]
    return flatten_orders(rows if keep is None else [rows[i] for i in keep])


def fast_path(body: bytes, keep: list[int] | None) -> tuple[FlatOrders, bool]:
    """The fast path's result and whether Arrow built it (False: it fell back)."""
    decoded = decode_orders_page(body)
    assert decoded is not None, "the Arrow reader refused a body the JSON reader takes"
    page = FastPage(0, decoded.total, decoded, list(range(len(decoded.ids))), body, "order")
    if keep is not None:
        page = FastPage(0, decoded.total, decoded, keep, body, "order")
    calls: list[int] = []
    original = fast_flatten.flatten.flatten_orders

    def counted(rows: Any) -> FlatOrders:
        calls.append(1)
        return original(rows)

    fast_flatten.flatten.flatten_orders = counted
    try:
        ((_, flat),) = flatten_order_pages([page])
    finally:
        fast_flatten.flatten.flatten_orders = original
    return flat, not calls


def assert_same(body: bytes, keep: list[int] | None = None) -> bool:
    """Both paths agree on rows and rejections (or fail alike); returns whether the fast path
    built the rows."""
    try:
        expected = python_path(body, keep)
    except Exception as error:  # the Python path cannot build it (e.g. a value past a column)
        with pytest.raises(type(error)):
            fast_path(body, keep)
        return False
    got, fast = fast_path(body, keep)
    assert got.orders.equals(expected.orders), _diff(got.orders, expected.orders)
    assert got.items.equals(expected.items), _diff(got.items, expected.items)
    assert got.rejected == expected.rejected
    return fast


def _diff(got: pa.RecordBatch, expected: pa.RecordBatch) -> str:
    for name in expected.schema.names:
        a, b = got.column(name).to_pylist(), expected.column(name).to_pylist()
        if a != b:
            return f"{name}: {a[:3]} != {b[:3]}"
    return f"schemas {got.schema} != {expected.schema}"


# ---- real pages ------------------------------------------------------------------------------


def test_every_page_of_the_store_takes_the_fast_path_with_identical_rows(emulator: Any) -> None:
    for body in page_bodies(emulator):
        assert assert_same(body)
        rows = len(json.loads(body)["order"]["items"])
        assert assert_same(body, keep=list(range(1, rows)))  # the overlap row dropped
        assert assert_same(body, keep=list(range(0, rows, 2)))  # scattered rows


def test_ids_and_total_match_the_json_reading(emulator: Any) -> None:
    for body in page_bodies(emulator):
        data = json.loads(body)["order"]
        decoded = decode_orders_page(body)
        assert decoded is not None
        assert decoded.ids == [row["id"] for row in data["items"]]
        assert decoded.total == data["total"]


@pytest.mark.parametrize("kind", KINDS)
def test_contract_breaks_give_identical_rows_and_rejections(
    emulator_factory: Callable[..., Any], kind: str
) -> None:
    emulator = emulator_factory(faults=[ContractBreakFault(kind, rate=0.1)])
    rejected = 0
    for body in page_bodies(emulator):
        if decode_orders_page(body) is None:  # e.g. a string id: the pager reads it as JSON
            continue
        assert_same(body)
        rejected += len(python_path(body, None).rejected)
    # A string id, quantity or price is refused by the reader (a type the schema does not
    # take): those pages never reach the fast path.
    assert rejected or kind in ("string_id", "string_number", "price_not_number")


def test_bad_records_and_huge_pages_give_identical_rows(
    emulator_factory: Callable[..., Any],
) -> None:
    for faults in ([BadRecordFault(0.5)], [HugePageFault(1.0, factor=3)]):
        emulator = emulator_factory(faults=faults)
        for body in page_bodies(emulator):
            if decode_orders_page(body) is not None:
                assert_same(body)


# ---- one odd value at a time -----------------------------------------------------------------


@pytest.fixture(scope="module")
def page() -> dict[str, Any]:
    """A real page of the small store, parsed (numbers as their JSON text, see `compact`)."""
    from alter_pipeline.emulator import EmulatorConfig, start_emulator

    emulator = start_emulator(EmulatorConfig(orders=30, products=12, seed=7))
    try:
        body = page_bodies(emulator, limit=10, step=10)[0]
    finally:
        emulator.stop()
    return json.loads(body, parse_float=Literal)


class Literal(str):
    """A JSON number kept as its text."""


def compact(data: Any) -> bytes:
    """Compact UTF-8 JSON as the API sends it; `Literal`s are written as bare numbers."""
    marked = json.dumps(_mark(data), ensure_ascii=False, separators=(",", ":"))
    return re.sub(r'"@@(.*?)@@"', r"\1", marked).encode()


def _mark(value: Any) -> Any:
    if isinstance(value, Literal):
        return f"@@{value}@@"
    if isinstance(value, dict):
        return {k: _mark(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark(v) for v in value]
    return value


def first_item(data: dict[str, Any]) -> dict[str, Any]:
    return data["order"]["items"][0]["productItems"][0]


Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    """Set `path` (dots; `order`, `item` or `order2` first) in the page."""

    def edit(data: dict[str, Any]) -> None:
        head, *rest = path.split(".")
        orders = data["order"]["items"]
        target = {"order": orders[0], "order2": orders[1], "item": first_item(data)}[head]
        for key in rest[:-1]:
            target = target.setdefault(key, {})
        if value is _DELETE:
            target.pop(rest[-1], None)
        else:
            target[rest[-1]] = value

    return edit


def _every_item(path: str, value: Any) -> Edit:
    """Set `path` (dots, inside an item) in every item of the page."""

    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for order in data["order"]["items"]:
            for item in order["productItems"]:
                target = item
                for key in parents:
                    target = target[key]
                target[last] = value

    return edit


_DELETE = object()
L = Literal

# Each case: an odd value the fast path must either handle exactly or hand to the Python path.
ODD: dict[str, Edit] = {
    "money as a string": _set("item.unitPrice.value", "17.5"),
    "money not a number": _set("order.totalPrice.value", "17.5 EUR"),
    "money too precise": _set("item.totalPrice.value", L("1.23456")),
    "money trailing zeros": _set("item.totalPrice.value", L("1.23450")),
    "money in exponent form": _set("item.unitPrice.value", L("1E+2")),
    "money negative": _set("order.totalPrice.value", L("-0.0001")),
    "money at the limit": _set("order.totalPrice.value", L("99999999999999.9999")),
    "money past the limit": _set("order.totalPrice.value", L("100000000000000")),
    "money far past the limit": _set("item.unitPrice.value", L("1e30")),
    "money null": _set("item.unitPrice.value", None),
    "money object empty": _set("item.totalPrice", {}),
    "measure too precise": _set("item.variant.weight", L("0.1234567")),
    "measure past its column": _set("item.variant.volume", L("5000000000000")),
    "measure as a string": _set("item.variant.volume", "0.5"),
    "quantity as a string": _set("item.quantity", "2"),
    "quantity as a float": _set("item.quantity", L("2.0")),
    "quantity huge": _set("item.quantity", L("9223372036854775807")),
    "id missing": _set("order.id", _DELETE),
    "id null": _set("order.id", None),
    "item id missing": _set("item.id", _DELETE),
    "unknown status": _set("order.orderStatus", "on_hold"),
    "status null": _set("order.orderStatus", None),
    "seen flag as 0/1": _set("order.isSeenByOwner", L("1")),
    "unknown order key": _set("order.giftWrap", True),
    "unknown order key null": _set("order.giftWrap", None),
    "unknown order key empty": _set("order.giftWrap", {}),
    "unknown item key empty list": _set("item.engraving", []),
    "unknown item key": _set("item.engraving", "Hi"),
    "unknown variant key": _set("item.variant.barcode", "123"),
    "unknown key in a size (ignored)": _set("item.size.unit", "cm"),
    "designName present": _set("order.designName", "Mug"),
    "designName null": _set("order.designName", None),
    "productGroup null": _set("order.productGroup", None),
    "productItems null": _set("order.productItems", None),
    "productItems empty": _set("order.productItems", []),
    "item null": lambda d: d["order"]["items"][0]["productItems"].append(None),
    "order null": lambda d: d["order"]["items"].append(None),
    "size null": _set("item.size", None),
    "variant null": _set("item.variant", None),
    "measureSize empty": _set("item.size.measureSize", {}),
    "measureSize null": _set("item.size.measureSize", None),
    "measureSize empty list": _set("item.size.measureSize", []),
    "measureSize a list": _set("item.size.measureSize", [L("7")]),
    "measureSize nested empty": _set("item.size.measureSize", {"W": {}}),
    "measureSize nested empty list": _set("item.size.measureSize", {"W": []}),
    "measureSize empty on every item": _every_item("size.measureSize", {}),
    "measureSize null on every item": _every_item("size.measureSize", None),
    "measureSize empty list on every item": _every_item("size.measureSize", []),
    "measureSize with a null": _set("item.size.measureSize", {"W": L("7.2"), "H": None}),
    "measureSize integers": _set("item.size.measureSize", {"W": L("7"), "H": L("7.0")}),
    "measureSize small numbers": _set("item.size.measureSize", {"W": L("0.00001")}),
    "measureSize a string": _set("item.size.measureSize", "7x8"),
    "measureSize nested": _set("item.size.measureSize", {"W": {"cm": L("7")}}),
    "measureSize missing": _set("item.size.measureSize", _DELETE),
    "metadata empty": _set("item.variant.metadata", {}),
    "metadata null": _set("item.variant.metadata", None),
    "metadata empty list": _set("item.variant.metadata", []),
    "metadata a list": _set("item.variant.metadata", ["x"]),
    "metadata nested empty": _set("item.variant.metadata", {"a": {}}),
    "metadata nested empty list": _set("item.variant.metadata", {"a": []}),
    "metadata empty on every item": _every_item("variant.metadata", {}),
    "metadata empty list on every item": _every_item("variant.metadata", []),
    "metadata and measureSize empty on every item": lambda d: (
        _every_item("variant.metadata", {})(d),
        _every_item("size.measureSize", {})(d),
    ),
    "metadata key null": _set("item.variant.metadata", {"sku": None}),
    "metadata a string": _set("item.variant.metadata", "abc"),
    "metadata a number": _set("item.variant.metadata", L("5")),
    "metadata nested": _set("item.variant.metadata", {"a": {"b": L("1")}}),
    "metadata brace in a string": _set("item.variant.metadata", {"sku": 'a}b","x":"y'}),
    "metadata escapes": _set("item.variant.metadata", {"sku": 'q"uo\\te\n\u2019'}),
    "metadata missing": _set("item.variant.metadata", _DELETE),
    "a measureSize key elsewhere": lambda d: (
        _set("item.size.measureSize", _DELETE)(d),
        _set("item.material.measureSize", {"W": L("1")})(d),
    ),
    "a metadata key in a string": _set("item.color.hex", '","metadata":{"sku":"x"}'),
    "names with escapes": _set("item.material.name", {"pl": 'Bawe\u0142na "x"', "en": "\\"}),
    "name not a string": _set("item.color.name.en", L("5")),
    "timestamp without fraction": _set("order.createdAt", "2026-02-09T01:55:48Z"),
    "timestamp one fraction digit": _set("item.updatedAt", "2026-02-09 01:55:49.5"),
    "timestamp seven fraction digits": _set("order.createdAt", "2026-02-09T01:55:48.1234567Z"),
    "timestamp with an offset": _set("order.createdAt", "2026-02-09T01:55:48+02:00"),
    "timestamp impossible date": _set("order.createdAt", "2025-02-29T01:55:48.000Z"),
    "timestamp hour 24": _set("item.updatedAt", "2026-02-09 24:00:00.000000"),
    "timestamp date only": _set("order.createdAt", "2026-02-09"),
    "timestamp garbage": _set("order.createdAt", "yesterday"),
    "timestamp null": _set("item.updatedAt", None),
}


# Where each case goes. The reader refuses these pages outright (a JSON type its schema does
# not take, or two types for one inferred field across the page's items): the pager decodes
# them as JSON, so only the Python path flattens them.
READER_REFUSES = frozenset(
    {
        "money not a number",
        "money too precise",
        "money far past the limit",
        "measure too precise",
        "quantity as a string",
        "quantity as a float",
        "seen flag as 0/1",
        "measureSize empty list",
        "measureSize a list",
        "measureSize nested empty",
        "measureSize nested empty list",
        "measureSize a string",
        "measureSize nested",
        "metadata empty list",
        "metadata a list",
        "metadata a string",
        "metadata a number",
        "name not a string",
    }
)
# These stay on the fast path; every other case is read, then handed to the Python path.
FAST = frozenset(
    {
        "money trailing zeros",
        "money in exponent form",
        "money negative",
        "money at the limit",
        "money null",
        "money object empty",
        "unknown key in a size (ignored)",
        "productGroup null",
        "productItems null",
        "productItems empty",
        "measureSize empty",
        "measureSize null",
        "measureSize empty on every item",
        "measureSize null on every item",
        "measureSize empty list on every item",
        "measureSize with a null",
        "measureSize integers",
        "measureSize small numbers",
        "metadata empty",
        "metadata null",
        "metadata nested empty list",
        "metadata empty on every item",
        "metadata empty list on every item",
        "metadata and measureSize empty on every item",
        "metadata key null",
        "metadata escapes",
        "a metadata key in a string",
        "names with escapes",
        "timestamp without fraction",
        "timestamp one fraction digit",
        "timestamp null",
    }
)


def odd_page(page: dict[str, Any], case: str) -> bytes:
    data = _unmark(json.loads(json.dumps(_mark(page))))  # a deep copy, numbers still marked
    ODD[case](data)
    return compact(data)


def test_every_odd_case_has_one_route() -> None:
    assert ODD.keys() >= READER_REFUSES | FAST
    assert not READER_REFUSES & FAST


@pytest.mark.parametrize("case", ODD)
def test_odd_values_give_identical_rows_and_rejections(page: dict[str, Any], case: str) -> None:
    body = odd_page(page, case)
    records = json.loads(body)["order"]["items"]
    if case in READER_REFUSES:
        assert decode_orders_page(body) is None
        flat = python_path(body, None)  # what the pager's JSON decoding then flattens
        assert flat.orders.num_rows + len(flat.rejected) == len(records)
        return
    assert assert_same(body) == (case in FAST)
    assert assert_same(body, keep=list(range(1, len(records)))) == (case in FAST)


def _unmark(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("@@") and value.endswith("@@"):
        return Literal(value[2:-2])
    if isinstance(value, dict):
        return {k: _unmark(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unmark(v) for v in value]
    return value


def test_money_goes_from_json_text_to_exact_decimals(page: dict[str, Any]) -> None:
    data = _unmark(json.loads(json.dumps(_mark(page))))
    prices = ["12345678901234.5678", "0.0001", "19.99", "0.1", "1E+2", "-7.5"]
    for order, price in zip(data["order"]["items"], prices, strict=False):
        order["totalPrice"]["value"] = Literal(price)
    flat, fast = fast_path(compact(data), None)
    assert fast
    assert flat.orders.schema.field("total_value").type == pa.decimal128(18, 4)
    got = flat.orders.column("total_value").to_pylist()[: len(prices)]
    assert got == [Decimal(p) for p in prices]
    assert str(got[0]) == "12345678901234.5678"  # 18 digits: a float has 15-17


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"order":null}',
        b'{"order":{"items":[]}}',
        b'{"order":{"total":3}}',
        b'{"order":{"items":[],"total":0}}\n{"order":{"items":[],"total":0}}',
        b'{"order":{"items":[{"id":"7"}],"total":1}}',
        b'{"order":{"items":[7],"total":1}}',
        b'{"order":{"items":[],"total":true}}',
        b'{"order":{"items":[],"total":1,"total":2}}',
        b'{"order":{"items":[],"total":1}} trailing',
        b'{"order":{"items":[{"id":1,"customizerName":"\xff"}],"total":1}}',
    ],
)
def test_bodies_the_reader_cannot_take_go_to_the_json_path(body: bytes) -> None:
    assert decode_orders_page(body) is None


def test_an_empty_listing_page_decodes() -> None:
    decoded = decode_orders_page(b'{"order":{"items":[],"total":0}}')
    assert decoded is not None and decoded.ids == [] and decoded.total == 0
    assert_same(b'{"order":{"items":[],"total":0}}')


def test_a_page_the_fast_path_built_is_never_decoded_as_json(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The point of the fast path: no Python object per row. Telling a fast page from a plain
    one must not read its `items`, which decode the whole body (a runtime protocol check did,
    and cost a quarter of the sync's CPU time)."""
    bodies = page_bodies(emulator, limit=20, step=19)[:4]
    pages = []
    for body, decoded in zip(bodies, fast_flatten.decode_orders_pages(bodies), strict=True):
        assert decoded is not None and decoded.flat is not None
        pages.append(
            FastPage(0, decoded.total, decoded, list(range(len(decoded.ids))), body, "order")
        )
    decoded_as_json: list[int] = []

    def loads(*args: Any, **kwargs: Any) -> Any:
        decoded_as_json.append(1)
        return json.loads(*args, **kwargs)

    monkeypatch.setattr(paging_pages, "json", SimpleNamespace(loads=loads))

    flats = [flat for _, flat in flatten_order_pages(pages)]

    assert sum(f.orders.num_rows for f in flats) == sum(len(p.keep) for p in pages)
    assert decoded_as_json == []


def test_a_batch_with_one_bad_page_keeps_the_other_pages_fast(emulator: Any) -> None:
    bodies = page_bodies(emulator, limit=20, step=19)
    bad = json.loads(bodies[1], parse_float=Literal)
    bad["order"]["items"][3]["orderStatus"] = "on_hold"
    bodies[1] = compact(_unmark(json.loads(json.dumps(_mark(bad)))))
    pages = []
    for body, decoded in zip(bodies, fast_flatten.decode_orders_pages(bodies), strict=True):
        assert decoded is not None
        assert (decoded.flat is None) == (body == bodies[1])  # read together, built alone
        pages.append(
            FastPage(0, decoded.total, decoded, list(range(len(decoded.ids))), body, "order")
        )
    flats = [flat for _, flat in flatten_order_pages(pages, batch_pages=8)]
    got = pa.Table.from_batches([f.orders for f in flats])
    expected = pa.Table.from_batches([python_path(b, None).orders for b in bodies])
    assert got.equals(expected)
    assert [r.record_id for f in flats for r in f.rejected] == [str(bad["order"]["items"][3]["id"])]


# ---- a whole sync ----------------------------------------------------------------------------


def test_a_full_sync_writes_the_same_tables_through_either_path(
    emulator_factory: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = [
        ContractBreakFault("unknown_status", order_ids=[5, 77]),
        ContractBreakFault("price_not_number", order_ids=[100]),
        ContractBreakFault("missing_id", order_ids=[150]),
    ]
    emulator = emulator_factory(orders=300, faults=faults)
    now = emulator.config.now

    def sync(lake: Path) -> dict[str, pa.Table]:
        with AlterClient(emulator.base_url, emulator.key, emulator.token) as client:
            run_sync(client, Lake(lake), full=True, concurrency=4, now=now)
        tables = {}
        for table, key in (("orders", "order_id"), ("order_items", "order_item_id")):
            read = pq.read_table(lake / "lake" / table)
            tables[table] = read.sort_by(key)
        rejected = pq.read_table(lake / "lake" / "rejected_records")
        tables["rejected_records"] = rejected.sort_by([("record_id", "ascending")])
        return tables

    fast = sync(tmp_path / "fast")
    monkeypatch.setattr(
        fast_flatten, "decode_orders_pages", lambda bodies, caches=None: [None] * len(bodies)
    )
    python = sync(tmp_path / "python")
    assert fast["orders"].num_rows == 300 - 4
    for table in fast:
        assert fast[table].equals(python[table]), table


def test_pages_read_together_give_what_each_gives_alone(
    emulator: Any, page: dict[str, Any]
) -> None:
    # The pager's decoder threads take several waiting bodies in one reader call.
    bodies = page_bodies(emulator, limit=20, step=19)[:6]
    odd = _unmark(json.loads(json.dumps(_mark(page))))
    ODD["money as a string"](odd)
    bodies.insert(2, compact(odd))  # no fast path for this page, only for it
    bodies.insert(4, b'{"order":null}')  # not a listing: None for this body alone
    together = fast_flatten.decode_orders_pages(bodies)
    alone = [decode_orders_page(body) for body in bodies]
    assert [d is None for d in together] == [d is None for d in alone] == [
        False, False, False, False, True, False, False, False,
    ]  # fmt: skip
    for body, a, b in zip(bodies, together, alone, strict=True):
        if a is None or b is None:
            continue
        assert (a.ids, a.total) == (b.ids, b.total)
        assert (a.flat is None) == (b.flat is None) == (body == bodies[2])
        if a.flat is not None and b.flat is not None:
            assert a.flat.orders.equals(b.flat.orders) and a.flat.items.equals(b.flat.items)
    # A body that is not one document on one line makes each body be read alone.
    assert fast_flatten.decode_orders_pages([bodies[0], b"{}\n{}"])[1] is None


def test_a_failure_inside_the_fast_path_hands_the_pages_to_json(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(fast_flatten, "_split", broken)
    bodies = page_bodies(emulator)
    assert fast_flatten.decode_orders_pages(bodies) == [None] * len(bodies)
    assert "decoding them as JSON" in caplog.text


def test_a_syncs_own_caches_give_the_rows_fresh_ones_give(emulator: Any) -> None:
    # One DecodeCaches per sync, reused page after page and evicting as it fills: the rows
    # must be those of a decoder that remembers nothing.
    bodies = page_bodies(emulator)
    shared = fast_flatten.DecodeCaches(verdicts_kept=1, texts_kept=2)
    for body in bodies:
        kept = decode_orders_page(body, shared)
        fresh = decode_orders_page(body, fast_flatten.DecodeCaches())
        assert kept is not None and fresh is not None and fresh.flat is not None
        assert kept.flat is not None
        assert kept.flat.orders.equals(fresh.flat.orders)
        assert kept.flat.items.equals(fresh.flat.items)
