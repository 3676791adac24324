"""The fast path of order pages: raw page bytes to Arrow record batches without Python objects.

`decode_orders_page` reads a `GET /customer-orders` body with Arrow's C++ JSON reader (it
releases the GIL) against the explicit wire schema below: every number lands in its Arrow type
straight from the JSON text, so money goes to `decimal128(18, 4)` exactly, never through a
binary float. `flatten_order_page` then flattens the page with Arrow compute (list flattening,
struct fields, parent indices) and checks the contract vectorised.

The fast path only takes a page it can prove gives the rows `flatten.flatten_orders` would
give. Anything else falls back to that Python path for the whole page, so `rejected_records`
and every column stay identical:

- the reader refuses the page: a JSON type other than the schema's (a string id, a boolean
  given as 0/1), more decimal places than the column's scale, a duplicate key, invalid JSON;
- a key the Python path keeps in `extra` (unknown keys of an order, an item or a variant), or
  `designName` (the detail shape: a null there differs from an absent key);
- a record the contract checks would reject: no id, an unknown status, a money value that is
  a string or out of range, a timestamp outside the two formats the API sends;
- `measureSize` or `metadata` that is not a flat JSON value (an object of scalars, `{}`,
  `[]` or null): those columns hold JSON text of what the API sent (`{}` stays `'{}'`, null
  stays NULL), built by the Python path's own function from each distinct raw value.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, TypeVar, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from alter_pipeline.contract import fields
from alter_pipeline.lake import flatten, schemas

logger = logging.getLogger("alter_pipeline.lake")

# ---- the wire schema of an orders page -------------------------------------------------------

_NAME = pa.struct([("pl", pa.string()), ("en", pa.string())])
_MONEY = pa.struct([("value", schemas.MONEY), ("currency", pa.string())])
_REF = pa.struct([("id", pa.int64()), ("name", _NAME)])
_ID = pa.struct([("id", pa.int64())])
_INT = pa.int64()

# `size.measureSize` and `variant.metadata` are left out: the reader infers them (any flat
# JSON value is fine) and their JSON text comes from the raw bytes (see `_json_texts`).
_SIZE = pa.struct([("id", _INT), ("name", _NAME)])
_VARIANT = pa.struct(
    [
        ("id", _INT), ("minOrderQuantity", _INT), ("processingTime", _INT),
        ("stockQuantity", _INT), ("volume", schemas.MEASURE), ("weight", schemas.MEASURE),
        # The detail shape's references: documented, never flattened (nor in `extra`).
        ("productGroupId", _INT), ("productModel3dId", _INT), ("sizeId", _INT),
        ("materialId", _INT), ("printTypeId", _INT), ("colorId", _INT),
    ]
)  # fmt: skip
_ITEM = pa.struct(
    [
        ("id", _INT), ("model3d", _ID), ("size", _SIZE), ("material", _REF),
        ("printType", _REF), ("color", pa.struct([("id", _INT), ("name", _NAME),
        ("hex", pa.string())])), ("variant", _VARIANT), ("unitPrice", _MONEY),
        ("totalPrice", _MONEY), ("quantity", _INT), ("updatedAt", pa.string()),
    ]
)  # fmt: skip
_ORDER = pa.struct(
    [
        ("id", _INT), ("customizerId", _INT), ("isSeenByOwner", pa.bool_()),
        ("orderStatus", pa.string()), ("createdAt", pa.string()),
        ("customizerOrderURL", pa.string()), ("productItems", pa.list_(_ITEM)),
        ("customizerName", pa.string()), ("productGroup", _REF), ("totalPrice", _MONEY),
    ]
)  # fmt: skip
WIRE_SCHEMA = pa.schema(
    [("order", pa.struct([("items", pa.list_(_ORDER)), ("total", pa.int64())]))]
)

_PARSE = pj.ParseOptions(explicit_schema=WIRE_SCHEMA, unexpected_field_behavior="infer")

# The leaves the tables need, by dotted path (see `_columns`).
_ORDER_LEAVES = (
    "id", "customizerId", "orderStatus", "isSeenByOwner", "createdAt", "customizerOrderURL",
    "customizerName", "productGroup.id", "productGroup.name.en", "productGroup.name.pl",
    "totalPrice.value", "totalPrice.currency",
)  # fmt: skip
_ITEM_LEAVES = (
    "id", "model3d.id", "size.id", "size.name.en", "size.name.pl", "material.id",
    "material.name.en", "material.name.pl", "printType.id", "printType.name.en",
    "printType.name.pl", "color.id", "color.name.en", "color.name.pl", "color.hex",
    "variant.id", "variant.minOrderQuantity", "variant.processingTime",
    "variant.stockQuantity", "variant.volume", "variant.weight", "unitPrice.value",
    "unitPrice.currency", "totalPrice.value", "totalPrice.currency", "quantity", "updatedAt",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Leaves:
    """Flat columns of some order records and of their items, ready to be checked and built
    into table rows: `orders` and `items` by dotted JSON path (plus the JSON-text columns
    `measure_size` and `variant_metadata`), `counts` the items of each record."""

    orders: dict[str, pa.Array]
    items: dict[str, pa.Array]
    counts: np.ndarray


@dataclass(frozen=True, slots=True)
class ArrowOrders:
    """A page as the fast decoder read it: each record's id (None where it has none), the
    listing's `total`, and the table rows of all its records (`flat`, with `counts` items per
    record), or None when this page must take the Python path (see the module docstring)."""

    ids: list[int | None]
    total: int
    flat: flatten.FlatOrders | None = None
    counts: np.ndarray | None = None

    def rows(self, keep: list[int]) -> flatten.FlatOrders:
        """The rows of the records at `keep` (the pager dropped the others as seen before):
        usually a run (a page's first record repeats the previous page's last), a slice."""
        assert self.flat is not None and self.counts is not None
        if len(keep) == len(self.counts):
            return self.flat
        ends = np.cumsum(self.counts)
        orders, items = self.flat.orders, self.flat.items
        if keep and keep == list(range(keep[0], keep[-1] + 1)):
            first, last = keep[0], keep[-1] + 1
            start, stop = int(ends[first] - self.counts[first]), int(ends[last - 1])
            return flatten.FlatOrders(
                orders.slice(first, last - first), items.slice(start, stop - start)
            )
        parents = np.repeat(np.arange(len(self.counts)), self.counts)
        return flatten.FlatOrders(
            orders.take(pa.array(keep, pa.int64())), items.filter(np.isin(parents, keep))
        )


class DecodeCaches:
    """What a listing's decoder remembers from page to page: verdicts on the key sets of the
    types the reader inferred (most pages of a listing share a handful) and the JSON texts of
    raw `measureSize` / `metadata` values (a listing repeats the catalog's few values).

    One object per sync, passed to `decode_orders_pages`: nothing is kept at module level, so
    two syncs in one process never see each other's entries. A lock makes it safe for the
    pager's decoder threads (one today, `paging.DECODE_THREADS`); it is taken once a call."""

    def __init__(self, verdicts_kept: int = 16, texts_kept: int = 4096) -> None:
        self._lock = threading.Lock()
        self._verdicts_kept, self._texts_kept = verdicts_kept, texts_kept
        self._verdicts: list[tuple[pa.DataType, bool]] = []
        self._texts: dict[bytes, dict[bytes, Any]] = {key: {} for key in _TEXT_RULES}

    def declared_only(self, page_type: pa.StructType) -> bool:
        """`_check_keys(page_type)`, remembered for the last few types seen."""
        with self._lock:
            for known, verdict in self._verdicts:
                if known == page_type:
                    return verdict
            verdict = _check_keys(page_type)
            self._verdicts.insert(0, (page_type, verdict))
            del self._verdicts[self._verdicts_kept :]
            return verdict

    def texts(self, key: bytes, raws: list[bytes]) -> list[Any]:
        """The text (or _REFUSED) of each raw value of `key`, by `_TEXT_RULES[key]`."""
        with self._lock:
            cache = self._texts[key]
            if len(cache) >= self._texts_kept:
                cache.clear()
            for raw in set(raws) - cache.keys():
                cache[raw] = _text_of(raw, _TEXT_RULES[key])
            return [cache[raw] for raw in raws]


def decode_orders_pages(
    bodies: list[bytes], caches: DecodeCaches | None = None
) -> list[ArrowOrders | None]:
    """Each body read by Arrow, or None for a body the reader cannot take (the caller then
    decodes that one as JSON, and reports any error the way it always did). Bodies of one line
    each are read in one call, one JSON line per page: a call costs about as much again as
    the reading, so several pages at once cost a third less each. `caches`: the sync's own
    (see `DecodeCaches`); without it, this call's alone."""
    try:
        return _decode(bodies, caches or DecodeCaches())
    except Exception:  # a bug here must cost speed, not the sync: the JSON path takes over
        logger.exception("fast path failed on %d page(s); decoding them as JSON", len(bodies))
        return [None] * len(bodies)


def _decode(bodies: list[bytes], caches: DecodeCaches) -> list[ArrowOrders | None]:
    if len(bodies) > 1 and all(_one_line(body) for body in bodies):
        read = _read(b"\n".join(bodies))
        # A body that is not exactly one document (two on a line, say) shifts the rows.
        if read is not None and read.num_rows == len(bodies):
            return _split(read, bodies, caches)
    return [_decode_one(body, caches) for body in bodies]


def decode_orders_page(body: bytes, caches: DecodeCaches | None = None) -> ArrowOrders | None:
    return decode_orders_pages([body], caches)[0]


def _one_line(body: bytes) -> bool:
    # Starts a document and ends one: it yields one row or more, never none.
    return body[:1] == b"{" and body[-1:] == b"}" and b"\n" not in body


def _decode_one(body: bytes, caches: DecodeCaches) -> ArrowOrders | None:
    read = _read(body) if body else None
    if read is None or read.num_rows != 1:  # several JSON documents (or none): not a page
        return None
    return _split(read, [body], caches)[0]


def _read(data: bytes) -> pa.Table | None:
    try:
        # The reader does not check UTF-8 inside strings; the JSON path refuses such a body.
        _as_binary(data).cast(pa.string())
        return pj.read_json(
            io.BytesIO(data),
            read_options=pj.ReadOptions(use_threads=False, block_size=len(data) + 64),
            parse_options=_PARSE,
        )
    except (pa.ArrowException, ValueError):  # invalid JSON or UTF-8, a type the schema refuses
        return None


def _as_binary(data: bytes) -> pa.Array:
    """`data` as a one-value binary array, without copying it."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int32).tobytes())
    return pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(data)])


def _split(read: pa.Table, bodies: list[bytes], caches: DecodeCaches) -> list[ArrowOrders | None]:
    """One `ArrowOrders` per row of `read` (row k is bodies[k])."""
    envelope = read.column("order").combine_chunks()
    items, totals = pc.struct_field(envelope, "items"), pc.struct_field(envelope, "total")
    # `{"order": null}`, a missing `items` or `total`: not a listing (the JSON path says so).
    valid = pc.and_(items.is_valid(), totals.is_valid()).to_pylist()
    rows = pc.list_flatten(items)
    ids = pc.struct_field(rows, "id").to_pylist()
    ends = np.cumsum(pc.list_value_length(items).fill_null(0).to_numpy())
    declared_only = caches.declared_only(pa.struct(list(read.schema)))
    columns = _columns(rows, bodies, caches) if declared_only else None
    bounds = [(int(ends[k - 1]) if k else 0, int(ends[k])) for k in range(len(bodies))]
    none: list[tuple[None, None]] = [(None, None)] * len(bodies)
    flats = columns.flats(bounds, bodies) if columns is not None else none
    return [
        ArrowOrders(ids[first:last], totals[k].as_py(), *flats[k]) if valid[k] else None
        for k, (first, last) in enumerate(bounds)
    ]


# ---- what a page must pass to take the fast path ---------------------------------------------

# The reader takes a JSON string for a decimal column ("17.5"); the contract does not.
_STRING_NUMBER = r'"(?:value|volume|weight)"\s*:\s*"'
_TEXT_KEYS = {"measure_size": b"measureSize", "variant_metadata": b"metadata"}
_TEXT_RULES: dict[bytes, Callable[[Any], str | None]] = {
    b"measureSize": flatten.measure_size_text,
    b"metadata": flatten.metadata_text,
}


@dataclass(frozen=True, slots=True)
class _Columns:
    """The leaves of every record of several pages (one reader call), with what each page
    needs to be checked on its own."""

    orders: dict[str, pa.Array]
    items: dict[str, pa.Array]
    counts: np.ndarray
    item_ends: np.ndarray
    broken_orders: np.ndarray  # null records before each record (one more entry than records)
    broken_items: np.ndarray  # null items before each item (likewise)
    string_numbers: list[bool]  # per body
    caches: DecodeCaches

    def flats(
        self, bounds: list[tuple[int, int]], bodies: list[bytes]
    ) -> list[tuple[flatten.FlatOrders | None, np.ndarray | None]]:
        """Table rows of each body's records (bounds[k] = its records), built in one go for
        all bodies when they all pass, else body by body; (None, None) for a body that must
        take the Python path."""
        texts = [self._texts(k, *bounds[k], body) for k, body in enumerate(bodies)]
        if all(t is not None for t in texts):
            merged = {
                column: pa.array([v for t in texts if t for v in t[column]], pa.string())
                for column in _TEXT_KEYS
            }
            whole = build(Leaves(self.orders, self.items | merged, self.counts))
            if whole is not None:
                return [self._cut(whole, first, last) for first, last in bounds]
        return [self._alone(first, last, t) for (first, last), t in zip(bounds, texts, strict=True)]

    def _texts(self, k: int, first: int, last: int, body: bytes) -> dict[str, list] | None:
        """Body k's JSON-text columns, or None when its page needs the Python path (a null
        record or item, a string where a decimal belongs, texts not matched to items)."""
        start, stop = self._item_start(first), self._item_start(last)
        broken = self.broken_orders[last] - self.broken_orders[first]
        broken += self.broken_items[stop] - self.broken_items[start]
        if broken or self.string_numbers[k]:
            return None
        texts = {}
        for column, key in _TEXT_KEYS.items():
            values = _json_texts(body, key, stop - start, self.caches)
            if values is None:
                return None
            texts[column] = values
        return texts

    def _item_start(self, record: int) -> int:
        return int(self.item_ends[record - 1]) if record else 0

    def _cut(
        self, whole: flatten.FlatOrders, first: int, last: int
    ) -> tuple[flatten.FlatOrders, np.ndarray]:
        start, stop = self._item_start(first), self._item_start(last)
        rows = flatten.FlatOrders(
            whole.orders.slice(first, last - first), whole.items.slice(start, stop - start)
        )
        return rows, self.counts[first:last]

    def _alone(
        self, first: int, last: int, texts: dict[str, list] | None
    ) -> tuple[flatten.FlatOrders | None, np.ndarray | None]:
        if texts is None:
            return None, None
        start, stop = self._item_start(first), self._item_start(last)
        leaves = Leaves(
            {k: v.slice(first, last - first) for k, v in self.orders.items()},
            {k: v.slice(start, stop - start) for k, v in self.items.items()}
            | {c: pa.array(v, pa.string()) for c, v in texts.items()},
            self.counts[first:last],
        )
        flat = build(leaves)
        return (flat, leaves.counts) if flat is not None else (None, None)


def _columns(rows: pa.StructArray, bodies: list[bytes], caches: DecodeCaches) -> _Columns:
    lists = rows.field("productItems")
    items = pc.list_flatten(lists)
    bodies_array = pa.array(bodies, pa.binary())
    string_numbers = pc.match_substring_regex(bodies_array, _STRING_NUMBER).to_pylist()
    orders, item_leaves = _fields(rows), _fields(items)
    counts = pc.list_value_length(lists).fill_null(0).to_numpy()
    return _Columns(
        {k: orders[k] for k in _ORDER_LEAVES},
        {k: item_leaves[k] for k in _ITEM_LEAVES},
        counts,
        np.cumsum(counts),
        np.concatenate(([0], np.cumsum(rows.is_null().to_numpy(zero_copy_only=False)))),
        np.concatenate(([0], np.cumsum(items.is_null().to_numpy(zero_copy_only=False)))),
        string_numbers,
        caches,
    )


def _fields(struct: pa.StructArray, prefix: str = "") -> dict[str, pa.Array]:
    """Every leaf of `struct` by dotted path; a null parent makes its children null."""
    found: dict[str, pa.Array] = {}
    for field_, child in zip(struct.type, struct.flatten(), strict=True):
        path = prefix + field_.name
        if pa.types.is_struct(field_.type) and field_.name not in ("measureSize", "metadata"):
            found |= _fields(child, path + ".")
        else:
            found[path] = child
    return found


def _check_keys(page_type: pa.StructType) -> bool:
    """Whether a page of `page_type` (the whole body as read) declares only known keys. The
    reader appends an inferred field for every key the schema does not declare: none may be
    a key the Python path keeps in `extra` (of an order, an item or a variant), and
    `measureSize` and `metadata` must be keys of an item's size and variant only (their texts
    are found by key in the raw bytes, one per item)."""
    order_type = page_type.field("order").type.field("items").type.value_type
    item = order_type.field("productItems").type.value_type
    size, variant = item.field("size").type, item.field("variant").type
    inferred_size = [size.field(i).name for i in range(_SIZE.num_fields, size.num_fields)]
    inferred_variant = [
        variant.field(i).name for i in range(_VARIANT.num_fields, variant.num_fields)
    ]
    return (
        order_type.num_fields == _ORDER.num_fields
        and item.num_fields == _ITEM.num_fields
        and "measureSize" in inferred_size
        and inferred_variant == ["metadata"]
        and _count_keys(page_type, "measureSize") == 1
        and _count_keys(page_type, "metadata") == 1
    )


def _count_keys(type_: pa.DataType, name: str) -> int:
    """Fields called `name` anywhere in `type_` (structs and lists, all levels)."""
    if pa.types.is_list(type_):
        return _count_keys(type_.value_type, name)
    if not pa.types.is_struct(type_):
        return 0
    fields = [type_.field(i) for i in range(type_.num_fields)]
    return sum((f.name == name) + _count_keys(f.type, name) for f in fields)


# ---- JSON-text columns from the raw bytes ----------------------------------------------------

_REFUSED = object()


def _json_texts(
    body: bytes, key: bytes, count: int, caches: DecodeCaches
) -> list[str | None] | None:
    """The column's text for each of the page's `count` items, in document order: the raw
    value after each `"key":`, turned into text by the Python path's own rule. None when the
    key does not occur exactly once per item in compact form, or a value is not flat."""
    parts = body.split(b'"' + key + b'":')
    if len(parts) != count + 1:
        return None
    # A real key follows `{` or `,`; `\"key":` would be the end of a string's content.
    if not {part[-1:] for part in parts[:-1]} <= _KEY_OPENERS:
        return None
    texts = caches.texts(key, [_raw_value(part) for part in parts[1:]])
    return None if any(text is _REFUSED for text in texts) else texts


_KEY_OPENERS = {b"{", b","}


def _raw_value(after_key: bytes) -> bytes:
    """The bytes of the value that starts `after_key`, if it is flat: up to the first `}` of
    an object, `[]`, or four bytes (`null`, else something `_text_of` refuses)."""
    if after_key[:1] == b"{":
        return after_key[: after_key.find(b"}") + 1]
    return after_key[:2] if after_key[:2] == b"[]" else after_key[:4]


def _text_of(raw: bytes, rule: Callable[[Any], str | None]) -> Any:
    """`rule` applied to `raw` parsed as the Python path parses it; _REFUSED when `raw` is not
    one whole JSON value (an object cut at a `}` inside a string, nested objects, a scalar
    other than null) or the rule rejects it. `{}`, `[]` and null get the rule's own text."""
    if raw[:1] != b"{" and raw not in (b"null", b"[]"):
        return _REFUSED
    try:
        return rule(json.loads(raw, parse_float=Decimal))
    except (flatten.RecordError, ValueError):
        return _REFUSED


# ---- building table rows ---------------------------------------------------------------------

_STATUSES = pa.array(sorted(fields.STATUSES), pa.string())
# The two formats the API sends (`2026-02-09T01:55:48.000Z`, `2026-02-09 01:55:49.000000`),
# fields in range; Arrow's cast then refuses impossible dates (a 30th of February), as
# `datetime.fromisoformat` does. Any other spelling takes the Python path.
_TIMESTAMP = (
    r"^[1-9]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{1,6})?Z?$"
)
_NAIVE = pa.timestamp("us")
# The contract's ranges (`contract.fields`), the ones `flatten` checks record by record.
_RANGES = (
    ("orders", "totalPrice.value", fields.MONEY_LIMIT),
    ("items", "unitPrice.value", fields.MONEY_LIMIT),
    ("items", "totalPrice.value", fields.MONEY_LIMIT),
    ("items", "variant.volume", fields.MEASURE_LIMIT),
    ("items", "variant.weight", fields.MEASURE_LIMIT),
    ("items", "quantity", fields.QUANTITY_LIMIT),
)


def build(leaves: Leaves) -> flatten.FlatOrders | None:
    """Table rows of `leaves`, or None when a record breaks the contract (the Python path
    then rejects it, with its reason)."""
    o, i = leaves.orders, leaves.items
    if o["id"].null_count or i["id"].null_count or not _all_valid_statuses(o["orderStatus"]):
        return None
    columns = {"orders": o, "items": i}
    if not all(_within(columns[side][path], limit) for side, path, limit in _RANGES):
        return None
    created, updated = _timestamps(o["createdAt"]), _timestamps(i["updatedAt"])
    if created is None or updated is None:
        return None
    counts = leaves.counts
    quantities = i["quantity"].fill_null(0).to_numpy()
    sums = np.concatenate(([0], np.cumsum(quantities, dtype=np.int64)))
    ends = np.cumsum(counts)
    orders = [
        o["id"], o["customizerId"], o["orderStatus"], o["isSeenByOwner"], created,
        o["customizerOrderURL"], o["customizerName"], o["productGroup.id"],
        o["productGroup.name.en"], o["productGroup.name.pl"], o["totalPrice.value"],
        o["totalPrice.currency"], pa.array(counts, pa.int32()),
        pa.array(sums[ends] - sums[ends - counts], pa.int64()),
        pa.nulls(len(counts), pa.string()),
    ]  # fmt: skip
    items = [
        i["id"], pa.array(np.repeat(o["id"].to_numpy(), counts), pa.int64()), i["model3d.id"],
        i["size.id"], i["size.name.en"], i["size.name.pl"], i["measure_size"],
        i["material.id"], i["material.name.en"], i["material.name.pl"], i["printType.id"],
        i["printType.name.en"], i["printType.name.pl"], i["color.id"], i["color.name.en"],
        i["color.name.pl"], i["color.hex"], i["variant.id"], i["variant_metadata"],
        i["variant.minOrderQuantity"], i["variant.processingTime"],
        i["variant.stockQuantity"], i["variant.volume"], i["variant.weight"],
        i["unitPrice.value"], i["unitPrice.currency"], i["totalPrice.value"],
        i["totalPrice.currency"], i["quantity"], updated, pa.nulls(len(i["id"]), pa.string()),
    ]  # fmt: skip
    return flatten.FlatOrders(
        orders=pa.RecordBatch.from_arrays(orders, schema=schemas.API_ORDERS),
        items=pa.RecordBatch.from_arrays(items, schema=schemas.API_ORDER_ITEMS),
    )


def _all_valid_statuses(statuses: pa.Array) -> bool:
    return pc.all(pc.is_in(statuses, value_set=_STATUSES)).as_py() is not False


def _within(values: pa.Array, limit: Decimal | int) -> bool:
    """Every value's magnitude below `limit`, compared exactly (Decimal or int)."""
    extremes = pc.min_max(values).as_py()
    low, high = extremes["min"], extremes["max"]
    return low is None or (-limit < low and high < limit)


def _timestamps(texts: pa.Array) -> pa.Array | None:
    if texts.null_count < len(texts):
        if pc.all(pc.match_substring_regex(texts, _TIMESTAMP)).as_py() is False:
            return None
        texts = pc.utf8_rtrim(texts, "Z")
    try:  # naive text is UTC (`contract.fields`); the regex admits no other offset than Z
        return texts.cast(_NAIVE).cast(schemas.UTC_TIMESTAMP)
    except pa.ArrowInvalid:
        return None


# ---- pages -----------------------------------------------------------------------------------

BATCH_PAGES = 16  # pages written together: fewer, larger Parquet writes


class RawPage(Protocol):
    """What the flattener needs of any page: its kept records as raw JSON dicts (the pager's
    `Page` and `FastPage` both have them; the lake knows nothing of the pager itself)."""

    @property
    def items(self) -> list[dict[str, Any]]: ...


class DecodedPage(Protocol):
    """A page the fast decoder read (the pager's `FastPage`): what `decode_orders_pages` made
    of its body, and the positions of the records the pager kept. Not a `RawPage`: a
    `FastPage`'s `items` decodes the whole body as JSON. Told apart by its `decoded` attribute,
    not `isinstance` (a runtime protocol check walks the members: ~0.1 ms a page)."""

    @property
    def decoded(self) -> object: ...

    @property
    def keep(self) -> list[int]: ...


P = TypeVar("P", bound=RawPage)


def flatten_order_pages(
    pages: Iterable[P], batch_pages: int = BATCH_PAGES
) -> Iterator[tuple[list[P], flatten.FlatOrders]]:
    """A listing's orders and items, `batch_pages` pages at a time: a page the fast decoder
    built (`decode_orders_pages`) is cut to the records the pager kept; any other page goes
    through `flatten.flatten_orders`, so the rows and rejections are those it gives."""
    batch: list[P] = []
    flats: list[flatten.FlatOrders] = []
    for page in pages:
        flats.append(_flat(page))
        batch.append(page)
        if len(batch) >= batch_pages:
            yield batch, _concat(flats)
            batch, flats = [], []
    if batch:
        yield batch, _concat(flats)


def _flat(page: RawPage) -> flatten.FlatOrders:
    decoded = getattr(page, "decoded", None)
    if isinstance(decoded, ArrowOrders) and decoded.flat is not None:
        return decoded.rows(cast(DecodedPage, page).keep)
    return flatten.flatten_orders(page.items)


def flatten_order_page(page: RawPage) -> flatten.FlatOrders:
    """One page's orders and items (the fast path when it can, else `flatten_orders`)."""
    return next(flatten_order_pages([page], batch_pages=1))[1]


def _concat(flats: list[flatten.FlatOrders]) -> flatten.FlatOrders:
    if len(flats) == 1:
        return flats[0]
    return flatten.FlatOrders(
        orders=pa.concat_batches([f.orders for f in flats]),
        items=pa.concat_batches([f.items for f in flats]),
        rejected=[r for f in flats for r in f.rejected],
    )
