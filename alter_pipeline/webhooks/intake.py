"""From the lake's `order_events` into the outbox: ingestion past the cursor, and replay.

The cursor is the highest `sequence` taken in. Each chunk of events is fanned out to the
endpoints whose patterns match and written together with the new cursor in one transaction,
so a crash either keeps a chunk whole or leaves it to be read again; the (endpoint, event)
primary key makes reading it again harmless.

An endpoint added to the file later receives events detected from then on; `replay` sends it
older ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from alter_pipeline.config import ConfigError, Settings
from alter_pipeline.events.schema import ORDER_EVENTS, ORDER_EVENTS_TABLE
from alter_pipeline.lake.locate import open_lake
from alter_pipeline.lake.schemas import UTC_TIMESTAMP
from alter_pipeline.webhooks.clock import system_clock
from alter_pipeline.webhooks.config import (
    Endpoint,
    Subscriptions,
    event_pattern,
    load_subscriptions,
    matching_types,
)
from alter_pipeline.webhooks.outbox import Outbox, QueuedEvent
from alter_pipeline.webhooks.signing import build_body

CHUNK_EVENTS = 1000


def event_files(data_dir: Path) -> list[Path]:
    """Parquet files of `order_events` in the current snapshot (none before the first one)."""
    snapshot = open_lake(data_dir).current()
    if snapshot is None:
        return []
    return sorted(snapshot.table_dir(ORDER_EVENTS_TABLE).rglob("*.parquet"))


def read_events(
    data_dir: Path, *, after_sequence: int | None = None, since: datetime | None = None
) -> pa.Table:
    """Events past a sequence and/or detected since a moment, in sequence order."""
    files = event_files(data_dir)
    if not files:
        return ORDER_EVENTS.empty_table()
    # The explicit schema ignores the hive `date=` folders: detected_at already carries it.
    dataset = ds.dataset([str(f) for f in files], schema=ORDER_EVENTS, format="parquet")
    condition = None
    if after_sequence is not None:
        condition = ds.field("sequence") > after_sequence
    if since is not None:
        since_condition = ds.field("detected_at") >= pa.scalar(_utc(since), UTC_TIMESTAMP)
        condition = since_condition if condition is None else condition & since_condition
    return dataset.to_table(filter=condition).sort_by("sequence")


def lake_max_sequence(data_dir: Path) -> int | None:
    """The highest `sequence` in the lake, from Parquet footers when they carry statistics
    (a sensor calls this every tick), else by reading the column."""
    files = event_files(data_dir)
    if not files:
        return None
    best: int | None = None
    for file in files:
        metadata = pq.read_metadata(file)
        if metadata.num_rows == 0:
            continue
        top = _max_from_statistics(metadata)
        if top is None:
            column = pq.read_table(file, columns=["sequence"]).column("sequence")
            top = pc.max(column).as_py()
        if top is not None:
            best = top if best is None else max(best, top)
    return best


def _max_from_statistics(metadata: pq.FileMetaData) -> int | None:
    index = metadata.schema.to_arrow_schema().get_field_index("sequence")
    if index < 0:
        return None
    top = None
    for group in range(metadata.num_row_groups):
        stats = metadata.row_group(group).column(index).statistics
        if stats is None or not stats.has_min_max:
            return None  # incomplete: let the caller read the column
        top = stats.max if top is None else max(top, stats.max)
    return top


def entity_of(event: dict[str, Any]) -> str:
    """The ordering key: events of one order (or product) reach an endpoint in order."""
    if event["event_type"].startswith("order.") and event.get("order_id") is not None:
        return f"order:{event['order_id']}"
    if event.get("product_id") is not None:
        return f"product:{event['product_id']}"
    if event.get("order_id") is not None:
        return f"order:{event['order_id']}"
    return f"event:{event['event_id']}"


def queued_event(event: dict[str, Any]) -> QueuedEvent:
    return QueuedEvent(
        event_id=event["event_id"],
        event_type=event["event_type"],
        sequence=event["sequence"],
        entity=entity_of(event),
        detected_at=_utc(event["detected_at"]).timestamp(),
        body=build_body(event),
    )


def _chunks(table: pa.Table) -> Iterator[list[dict[str, Any]]]:
    for offset in range(0, table.num_rows, CHUNK_EVENTS):
        yield table.slice(offset, CHUNK_EVENTS).to_pylist()


def _fanout(
    rows: Iterable[dict[str, Any]], endpoints: Iterable[Endpoint]
) -> list[tuple[QueuedEvent, list[str]]]:
    endpoints = list(endpoints)
    return [
        (queued_event(row), [e.id for e in endpoints if e.matches(row["event_type"])])
        for row in rows
    ]


def ingest(
    settings: Settings,
    *,
    subscriptions: Subscriptions | None = None,
    now: datetime | None = None,
) -> int:
    """Queue events past the cursor for every matching enabled endpoint; returns rows queued.

    The cursor advances past every event read, matched or not: an event no endpoint wants
    now is not kept for endpoints configured later (use `replay` for those).
    """
    subscriptions = subscriptions or load_subscriptions(settings.webhooks_file)
    at = (now or system_clock()).timestamp()
    queued = 0
    with Outbox.open(settings.data_dir) as outbox:
        disabled = outbox.disabled()
        endpoints = [e for e in subscriptions.active() if e.id not in disabled]
        table = read_events(settings.data_dir, after_sequence=outbox.cursor())
        for rows in _chunks(table):
            queued += outbox.enqueue(
                _fanout(rows, endpoints), at, advance_cursor_to=rows[-1]["sequence"]
            )
    return queued


def replay(
    settings: Settings,
    since: datetime,
    endpoint: str | None = None,
    event_types: Iterable[str] | None = None,
    *,
    subscriptions: Subscriptions | None = None,
    now: datetime | None = None,
) -> int:
    """Re-queue events detected since `since` (same `webhook-id`, same body) for the matching
    endpoints, or only `endpoint`; optionally only `event_types` (wildcards allowed).
    Returns deliveries re-queued; each goes out again on the next `deliver_due`."""
    subscriptions = subscriptions or load_subscriptions(settings.webhooks_file)
    wanted = _type_filter(event_types)
    at = (now or system_clock()).timestamp()
    with Outbox.open(settings.data_dir) as outbox:
        endpoints = _replay_endpoints(subscriptions, outbox, endpoint)
        table = read_events(settings.data_dir, since=since)
        if wanted is not None:
            table = table.filter(pc.is_in(table.column("event_type"), pa.array(sorted(wanted))))
        return sum(outbox.requeue(_fanout(rows, endpoints), at) for rows in _chunks(table))


def _type_filter(event_types: Iterable[str] | None) -> set[str] | None:
    if not event_types:
        return None
    wanted: set[str] = set()
    for pattern in event_types:
        types = matching_types(pattern) if event_pattern(pattern) else ()
        if not types:
            raise ConfigError(f"unknown event type {pattern!r}")
        wanted.update(types)
    return wanted


def _replay_endpoints(
    subscriptions: Subscriptions, outbox: Outbox, endpoint_id: str | None
) -> list[Endpoint]:
    disabled = outbox.disabled()
    if endpoint_id is None:
        return [e for e in subscriptions.active() if e.id not in disabled]
    endpoint = subscriptions.get(endpoint_id)
    if endpoint is None:
        known = ", ".join(e.id for e in subscriptions.endpoints) or "none"
        raise ConfigError(f"unknown endpoint {endpoint_id!r} (known: {known})")
    if not endpoint.enabled:
        raise ConfigError(f"endpoint {endpoint_id} is disabled in {subscriptions.source}")
    if endpoint_id in disabled:
        raise ConfigError(
            f"endpoint {endpoint_id} is disabled ({disabled[endpoint_id][1]}); "
            f"run `webhooks enable {endpoint_id}` first"
        )
    return [endpoint]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
