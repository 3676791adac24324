"""The durable outbox: SQLite in WAL mode at `$ALTER_DATA_DIR/webhooks/outbox.sqlite`.

Tables
    meta        the ingestion cursor (last `order_events.sequence` taken in)
    events      each event's exact body bytes, built once (retries and replays resend them)
    deliveries  one row per (endpoint, event): state, attempts, next attempt, lease
    attempts    one row per HTTP attempt: status code, latency, error text (never secrets)
    endpoints   state learnt from receivers: disabled after 410 Gone, paused by Retry-After

Every state change is one `BEGIN IMMEDIATE` transaction, so two deliverers (a Dagster run and
someone at the CLI) serialise their claims. A claimed row carries a lease (`claimed_until`) and a
random `claim_token`: nobody else sends it while the lease runs, and after a crash the lease
simply expires and the row is claimed again, to be resent with the same `webhook-id`.

`synchronous=NORMAL` in WAL mode survives a killed process without losing a commit; a power
cut may lose the last commits, which at worst resends a delivery (at-least-once either way).
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    entity TEXT NOT NULL,
    detected_at REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    endpoint_id TEXT NOT NULL,
    event_id TEXT NOT NULL REFERENCES events (event_id),
    entity TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    claimed_until REAL,
    claim_token TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    delivered_at REAL,
    last_status INTEGER,
    last_error TEXT,
    PRIMARY KEY (endpoint_id, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_queue ON deliveries (endpoint_id, state, sequence);
CREATE INDEX IF NOT EXISTS deliveries_entity ON deliveries (endpoint_id, entity, state, sequence);
CREATE INDEX IF NOT EXISTS deliveries_settled ON deliveries (state, delivered_at);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    endpoint_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    outcome TEXT NOT NULL,
    status_code INTEGER,
    latency_ms REAL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (endpoint_id, event_id);
CREATE INDEX IF NOT EXISTS attempts_time ON attempts (endpoint_id, at);
CREATE TABLE IF NOT EXISTS endpoints (
    endpoint_id TEXT PRIMARY KEY,
    disabled_at REAL,
    disabled_reason TEXT,
    paused_until REAL
);
"""

# Due rows of one endpoint, in event order, skipping any row whose entity has an earlier
# event still pending for the endpoint (that one goes first, even while it waits to retry).
_DUE = """
SELECT d.event_id, e.event_type, d.entity, d.attempts, e.body
FROM deliveries d JOIN events e ON e.event_id = d.event_id
WHERE d.endpoint_id = ? AND d.state = 'pending' AND d.next_attempt_at <= ?
  AND (d.claimed_until IS NULL OR d.claimed_until <= ?)
  AND NOT EXISTS (
    SELECT 1 FROM deliveries p
    WHERE p.endpoint_id = d.endpoint_id AND p.entity = d.entity
      AND p.state = 'pending' AND p.sequence < d.sequence)
ORDER BY d.sequence
LIMIT ?
"""

CURSOR_KEY = "ingest_cursor"
OUTBOX_FILE = Path("webhooks") / "outbox.sqlite"


def outbox_path(data_dir: Path) -> Path:
    return Path(data_dir) / OUTBOX_FILE


@dataclass(frozen=True)
class QueuedEvent:
    """An event ready for the outbox: identity, ordering key and the exact body bytes."""

    event_id: str
    event_type: str
    sequence: int
    entity: str
    detected_at: float
    body: bytes


@dataclass(frozen=True)
class Claim:
    """A delivery leased to this process for one attempt."""

    endpoint_id: str
    event_id: str
    event_type: str
    entity: str
    attempt: int
    token: str
    body: bytes


@dataclass(frozen=True)
class Counts:
    pending: int = 0
    retrying: int = 0
    dead: int = 0
    delivered: int = 0
    oldest_pending_at: float | None = None


@dataclass(frozen=True)
class LastAttempt:
    at: float
    status_code: int | None
    error: str | None


class Outbox:
    def __init__(
        self, path: Path, *, busy_timeout_s: float = 30.0, read_only: bool = False
    ) -> None:
        self.path = Path(path)
        if read_only:
            # For sensor ticks: no schema creation, no write lock, no file created.
            uri = f"{self.path.absolute().as_uri()}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, timeout=busy_timeout_s, isolation_level=None)
            return
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE below.
        self.db = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        with self.transaction():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)

    @classmethod
    def open(cls, data_dir: Path, *, read_only: bool = False) -> Outbox:
        return cls(outbox_path(data_dir), read_only=read_only)

    @classmethod
    def for_reading(cls, data_dir: Path) -> Outbox:
        """Read-only when the outbox exists, else an empty one in memory: looking never
        creates files (status in a fresh checkout, sensor ticks)."""
        path = outbox_path(data_dir)
        return cls(path, read_only=True) if path.is_file() else cls(Path(":memory:"))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; the write lock is taken up front so claims never interleave."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ---- ingestion ---------------------------------------------------------------------------

    def cursor(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (CURSOR_KEY,)).fetchone()
        return int(row[0]) if row else 0

    def enqueue(
        self,
        fanout: Iterable[tuple[QueuedEvent, Iterable[str]]],
        now: float,
        advance_cursor_to: int | None = None,
    ) -> int:
        """Queue each event for its endpoints, idempotently, in one transaction with the cursor.

        Events at or below the cursor (taken in by a concurrent run meanwhile) are skipped, and
        the primary key makes a repeated (endpoint, event) pair a no-op. Returns rows added.
        """
        added = 0
        with self.transaction() as db:
            cursor = self.cursor() if advance_cursor_to is not None else None
            for event, endpoint_ids in fanout:
                if cursor is not None and event.sequence <= cursor:
                    continue
                added += self._queue(db, event, endpoint_ids, now)
            if advance_cursor_to is not None and advance_cursor_to > (cursor or 0):
                db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (CURSOR_KEY, str(advance_cursor_to)),
                )
        return added

    @staticmethod
    def _queue(
        db: sqlite3.Connection, event: QueuedEvent, endpoint_ids: Iterable[str], now: float
    ) -> int:
        rows = [
            (endpoint_id, event.event_id, event.entity, event.sequence, now, now, now)
            for endpoint_id in endpoint_ids
        ]
        if not rows:
            return 0
        db.execute(
            "INSERT OR IGNORE INTO events "
            "(event_id, event_type, sequence, entity, detected_at, body) VALUES (?, ?, ?, ?, ?, ?)",
            (
                event.event_id,
                event.event_type,
                event.sequence,
                event.entity,
                event.detected_at,
                event.body,
            ),
        )
        before = db.total_changes
        db.executemany(
            "INSERT OR IGNORE INTO deliveries (endpoint_id, event_id, entity, sequence, state, "
            "next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
            rows,
        )
        return db.total_changes - before

    def requeue(self, fanout: Iterable[tuple[QueuedEvent, Iterable[str]]], now: float) -> int:
        """Replay: delivered or dead rows go back to pending with a fresh attempt budget.

        Rows still pending are left alone (they are on their way), missing rows are added.
        The event keeps its id and stored body, so receivers see the same `webhook-id`.
        """
        changed = 0
        with self.transaction() as db:
            for event, endpoint_ids in fanout:
                endpoint_ids = list(endpoint_ids)
                changed += self._queue(db, event, endpoint_ids, now)
                before = db.total_changes
                db.executemany(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?, "
                    "claimed_until = NULL, claim_token = NULL, updated_at = ?, "
                    "last_status = NULL, last_error = NULL "
                    "WHERE endpoint_id = ? AND event_id = ? AND state IN ('delivered', 'dead')",
                    [(now, now, endpoint_id, event.event_id) for endpoint_id in endpoint_ids],
                )
                changed += db.total_changes - before
        return changed

    # ---- claiming and recording ----------------------------------------------------------------

    def claim(
        self, now: float, capacity: Mapping[str, int], leases: Mapping[str, float]
    ) -> list[Claim]:
        """Lease due deliveries: at most `capacity[endpoint]` per endpoint, oldest events first.

        A row is due when pending, its next attempt time has come, nobody holds a live lease on
        it, its endpoint is neither disabled nor paused, and no earlier event of the same
        entity (order or product) is still pending for that endpoint: head-of-line blocking per
        (endpoint, entity) keeps each order's events in order while other orders proceed.
        One query per endpoint, so a long backlog at one endpoint never starves the others.
        """
        claims: list[Claim] = []
        with self.transaction() as db:
            for endpoint_id, wanted in capacity.items():
                if wanted <= 0 or self._held(db, endpoint_id, now):
                    continue
                for event_id, event_type, entity, attempts, body in db.execute(
                    _DUE, (endpoint_id, now, now, wanted)
                ).fetchall():
                    token = uuid.uuid4().hex
                    db.execute(
                        "UPDATE deliveries SET attempts = attempts + 1, claimed_until = ?, "
                        "claim_token = ?, updated_at = ? WHERE endpoint_id = ? AND event_id = ?",
                        (now + leases[endpoint_id], token, now, endpoint_id, event_id),
                    )
                    claims.append(
                        Claim(endpoint_id, event_id, event_type, entity, attempts + 1, token, body)
                    )
        return claims

    @staticmethod
    def _held(db: sqlite3.Connection, endpoint_id: str, now: float) -> bool:
        """Disabled after 410, or paused by a Retry-After it sent."""
        row = db.execute(
            "SELECT disabled_at, paused_until FROM endpoints WHERE endpoint_id = ?", (endpoint_id,)
        ).fetchone()
        return row is not None and (row[0] is not None or (row[1] or 0) > now)

    def _log_attempt(
        self,
        db: sqlite3.Connection,
        claim: Claim,
        now: float,
        outcome: str,
        status_code: int | None,
        latency_ms: float | None,
        error: str | None,
    ) -> None:
        db.execute(
            "INSERT INTO attempts (endpoint_id, event_id, attempt, at, outcome, status_code, "
            "latency_ms, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                claim.endpoint_id,
                claim.event_id,
                claim.attempt,
                now,
                outcome,
                status_code,
                latency_ms,
                error,
            ),
        )

    def _settle(
        self, db: sqlite3.Connection, claim: Claim, assignments: str, *args: object
    ) -> bool:
        """Apply `assignments` to the claimed row if our lease is still the current one."""
        changed = db.execute(
            f"UPDATE deliveries SET claimed_until = NULL, claim_token = NULL, {assignments} "
            "WHERE endpoint_id = ? AND event_id = ? AND claim_token = ?",
            (*args, claim.endpoint_id, claim.event_id, claim.token),
        ).rowcount
        return changed == 1

    def record_delivered(
        self, claim: Claim, now: float, status_code: int, latency_ms: float
    ) -> bool:
        with self.transaction() as db:
            self._log_attempt(db, claim, now, "delivered", status_code, latency_ms, None)
            return self._settle(
                db,
                claim,
                "state = 'delivered', delivered_at = ?, updated_at = ?, last_status = ?, "
                "last_error = NULL",
                now,
                now,
                status_code,
            )

    def record_failed(
        self,
        claim: Claim,
        now: float,
        *,
        status_code: int | None,
        latency_ms: float | None,
        error: str,
        retry_at: float | None,
        pause_endpoint_until: float | None = None,
    ) -> bool:
        """A failed attempt: retry at `retry_at`, or dead-letter the row when it is None."""
        outcome = "dead" if retry_at is None else "retry"
        with self.transaction() as db:
            self._log_attempt(db, claim, now, outcome, status_code, latency_ms, error)
            if pause_endpoint_until is not None:
                self._pause(db, claim.endpoint_id, pause_endpoint_until)
            if retry_at is None:
                return self._settle(
                    db,
                    claim,
                    "state = 'dead', updated_at = ?, last_status = ?, last_error = ?",
                    now,
                    status_code,
                    error,
                )
            return self._settle(
                db,
                claim,
                "next_attempt_at = ?, updated_at = ?, last_status = ?, last_error = ?",
                retry_at,
                now,
                status_code,
                error,
            )

    def record_gone(self, claim: Claim, now: float, latency_ms: float, reason: str) -> int:
        """410 Gone: disable the endpoint and dead-letter everything it still had queued."""
        with self.transaction() as db:
            self._log_attempt(db, claim, now, "gone", 410, latency_ms, reason)
            db.execute(
                "INSERT INTO endpoints (endpoint_id, disabled_at, disabled_reason) "
                "VALUES (?, ?, ?) "
                "ON CONFLICT (endpoint_id) DO UPDATE SET disabled_at = excluded.disabled_at, "
                "disabled_reason = excluded.disabled_reason",
                (claim.endpoint_id, now, reason),
            )
            return db.execute(
                "UPDATE deliveries SET state = 'dead', claimed_until = NULL, claim_token = NULL, "
                "updated_at = ?, last_status = CASE WHEN event_id = ? THEN 410 ELSE last_status "
                "END, last_error = ? WHERE endpoint_id = ? AND state = 'pending'",
                (now, claim.event_id, f"endpoint disabled: {reason}", claim.endpoint_id),
            ).rowcount

    @staticmethod
    def _pause(db: sqlite3.Connection, endpoint_id: str, until: float) -> None:
        db.execute(
            "INSERT INTO endpoints (endpoint_id, paused_until) VALUES (?, ?) "
            "ON CONFLICT (endpoint_id) DO UPDATE SET paused_until = "
            "max(coalesce(paused_until, 0), excluded.paused_until)",
            (endpoint_id, until),
        )

    # ---- endpoint state ------------------------------------------------------------------------

    def disabled(self) -> dict[str, tuple[float, str]]:
        rows = self.db.execute(
            "SELECT endpoint_id, disabled_at, disabled_reason FROM endpoints "
            "WHERE disabled_at IS NOT NULL"
        )
        return {endpoint_id: (at, reason) for endpoint_id, at, reason in rows}

    def paused_until(self, endpoint_id: str) -> float | None:
        row = self.db.execute(
            "SELECT paused_until FROM endpoints WHERE endpoint_id = ?", (endpoint_id,)
        ).fetchone()
        return row[0] if row else None

    def enable(self, endpoint_id: str) -> bool:
        """Clear a 410 disable (and any pause). Returns whether the endpoint was disabled."""
        with self.transaction() as db:
            return (
                db.execute(
                    "UPDATE endpoints SET disabled_at = NULL, disabled_reason = NULL, "
                    "paused_until = NULL WHERE endpoint_id = ? AND disabled_at IS NOT NULL",
                    (endpoint_id,),
                ).rowcount
                == 1
            )

    # ---- reading for status and sensors ------------------------------------------------------

    def counts(self) -> dict[str, Counts]:
        rows = self.db.execute(
            """
            SELECT endpoint_id,
                   sum(state = 'pending' AND last_error IS NULL),
                   sum(state = 'pending' AND last_error IS NOT NULL),
                   sum(state = 'dead'),
                   sum(state = 'delivered'),
                   min(CASE WHEN state = 'pending' THEN created_at END)
            FROM deliveries GROUP BY endpoint_id
            """
        )
        return {row[0]: Counts(*row[1:]) for row in rows}

    def last_attempt(self, endpoint_id: str, *, success: bool) -> LastAttempt | None:
        condition = "outcome = 'delivered'" if success else "outcome != 'delivered'"
        row = self.db.execute(
            f"SELECT at, status_code, error FROM attempts WHERE endpoint_id = ? AND {condition} "
            "ORDER BY at DESC, id DESC LIMIT 1",
            (endpoint_id,),
        ).fetchone()
        return LastAttempt(*row) if row else None

    def next_due_at(self, endpoint_ids: Iterable[str] | None = None) -> float | None:
        """When the earliest sendable delivery falls due (sensors use this to schedule runs).

        Rows waiting behind an earlier event of their order, and endpoints disabled after
        410, are left out: they would make a sensor ask for runs that cannot send anything.
        """
        query = """
            SELECT min(max(d.next_attempt_at, coalesce(d.claimed_until, 0),
                           coalesce(s.paused_until, 0)))
            FROM deliveries d LEFT JOIN endpoints s ON s.endpoint_id = d.endpoint_id
            WHERE d.state = 'pending' AND s.disabled_at IS NULL
              AND NOT EXISTS (
                SELECT 1 FROM deliveries p
                WHERE p.endpoint_id = d.endpoint_id AND p.entity = d.entity
                  AND p.state = 'pending' AND p.sequence < d.sequence)
        """
        args: list[str] = []
        if endpoint_ids is not None:
            args = list(endpoint_ids)
            if not args:
                return None
            query += f" AND d.endpoint_id IN ({','.join('?' * len(args))})"
        row = self.db.execute(query, args).fetchone()
        return row[0] if row else None

    def attempts_of(self, event_id: str, endpoint_id: str | None = None) -> list[dict[str, object]]:
        query = "SELECT * FROM attempts WHERE event_id = ?"
        args: tuple[object, ...] = (event_id,)
        if endpoint_id is not None:
            query += " AND endpoint_id = ?"
            args += (endpoint_id,)
        cursor = self.db.execute(query + " ORDER BY id", args)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def delivery(self, endpoint_id: str, event_id: str) -> dict[str, object] | None:
        cursor = self.db.execute(
            "SELECT * FROM deliveries WHERE endpoint_id = ? AND event_id = ?",
            (endpoint_id, event_id),
        )
        row = cursor.fetchone()
        return dict(zip([d[0] for d in cursor.description], row, strict=True)) if row else None

    def prune(self, before: float) -> dict[str, int]:
        """Forget delivered rows (and their attempt log) settled before `before`, and the
        bodies of events no delivery refers to any more. Pending rows (a retry to come) and
        dead ones (kept for `webhooks replay`) stay, whatever their age; the ingestion cursor
        is a sequence kept in `meta`, so a forgotten event is never taken in again. Rows
        removed, per table."""
        with self.transaction() as db:
            attempts = db.execute(
                "DELETE FROM attempts WHERE (endpoint_id, event_id) IN (SELECT endpoint_id, "
                "event_id FROM deliveries WHERE state = 'delivered' AND delivered_at < ?)",
                (before,),
            ).rowcount
            deliveries = db.execute(
                "DELETE FROM deliveries WHERE state = 'delivered' AND delivered_at < ?", (before,)
            ).rowcount
            events = db.execute(
                "DELETE FROM events WHERE NOT EXISTS "
                "(SELECT 1 FROM deliveries d WHERE d.event_id = events.event_id)"
            ).rowcount
        return {"deliveries": deliveries, "attempts": attempts, "events": events}
