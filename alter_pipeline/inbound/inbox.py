"""The durable inbox: every verified inbound request, written before the server answers 2xx.

SQLite in WAL mode (`synchronous=FULL`: a stored event survives a power cut) at
`<lake root>/inbound/inbox.sqlite`, beside the webhook outbox and the rules ledger. An event
is keyed by (source, the sender's event id): a redelivery inserts nothing, so the platform's
retries and a replayed request are no-ops. `sequence` grows with every stored event; the
sensor's cursor is the last sequence it handed to a run.

Life of an event: `pending` -> claimed by a rules run (`claimed`, with the run id, so two
runs never work on one event; a claim of a crashed run goes stale after `claim_ttl`) ->
`applied` | `skipped` (with the reason) | `failed` (retried from `next_attempt_at`, with
exponential backoff and jitter) -> `dead` after `MAX_ATTEMPTS` failures.

Rejected requests are only counted (table `counters`), never stored.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INBOX_FILE = Path("inbound") / "inbox.sqlite"
PENDING, CLAIMED, APPLIED, SKIPPED, FAILED, DEAD = (
    "pending",
    "claimed",
    "applied",
    "skipped",
    "failed",
    "dead",
)
FINAL_STATES = (APPLIED, SKIPPED, DEAD)
MAX_ATTEMPTS = 8
RETRY_BASE_S = 30.0
RETRY_MAX_S = 3600.0
DUPLICATE = "duplicate"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    sequence        INTEGER PRIMARY KEY AUTOINCREMENT,
    source          TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    body            BLOB    NOT NULL,
    received_at     REAL    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    claimed_by      TEXT,
    claimed_at      REAL,
    order_id        INTEGER,
    rule_id         TEXT,
    detail          TEXT,
    resolved_at     REAL,
    UNIQUE (source, event_id)
);
CREATE INDEX IF NOT EXISTS events_by_state ON events (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS counters (
    source  TEXT    NOT NULL,
    counter TEXT    NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (source, counter)
);
"""


@dataclass(frozen=True)
class Incoming:
    """A verified request, as the server hands it to the inbox."""

    source: str
    event_id: str
    type: str
    body: bytes
    received_at: float


@dataclass(frozen=True)
class InboxEvent:
    sequence: int
    source: str
    event_id: str
    type: str
    body: bytes
    received_at: float
    state: str
    attempts: int
    detail: str | None = None

    def payload(self) -> Any:
        """The parsed JSON body (None when it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def label(self) -> str:
        return f"{self.source} event {self.event_id}"


def retry_delay(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds before attempt `attempts + 1`: 30 s doubling up to an hour, ±20% jitter."""
    base = min(RETRY_MAX_S, RETRY_BASE_S * 2 ** max(0, attempts - 1))
    return base * (0.8 + 0.4 * (rng or random).random())


class Inbox:
    def __init__(self, path: Path, *, claim_ttl: float = 900.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.claim_ttl = claim_ttl
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def for_root(cls, root: Path, **kwargs: float) -> Inbox:
        return cls(Path(root) / INBOX_FILE, **kwargs)

    @staticmethod
    def exists_under(root: Path) -> bool:
        return (Path(root) / INBOX_FILE).is_file()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self, work: Any) -> Any:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = work()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return result

    # ---- the server's side ----------------------------------------------------------------

    def store(
        self, events: list[Incoming], counts: Mapping[tuple[str, str], int] | None = None
    ) -> list[bool]:
        """Store events (and add `counts` to the counters) in one transaction; per event, True
        if new, False if a redelivery."""

        def work() -> list[bool]:
            stored = []
            for event in events:
                cursor = self._db.execute(
                    "INSERT INTO events (source, event_id, type, body, received_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (source, event_id) DO NOTHING",
                    (event.source, event.event_id, event.type, event.body, event.received_at),
                )
                stored.append(cursor.rowcount == 1)
            duplicates: dict[str, int] = {}
            for event, new in zip(events, stored, strict=True):
                if not new:
                    duplicates[event.source] = duplicates.get(event.source, 0) + 1
            self._count({(s, DUPLICATE): n for s, n in duplicates.items()})
            self._count(counts or {})
            return stored

        return self._transaction(work)

    def count(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Add to the (source, counter) counters, e.g. ("stripe", "rejected:signature")."""
        if counts:
            self._transaction(lambda: self._count(counts))

    def _count(self, counts: Mapping[tuple[str, str], int]) -> None:
        for (source, counter), n in counts.items():
            self._db.execute(
                "INSERT INTO counters VALUES (?, ?, ?) ON CONFLICT (source, counter) "
                "DO UPDATE SET count = count + excluded.count",
                (source, counter, n),
            )

    # ---- the sensor's side ----------------------------------------------------------------

    def latest_sequence(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT max(sequence) FROM events").fetchone()
        return int(row[0] or 0)

    def next_retry_at(self) -> float | None:
        """When the earliest failed event may be tried again (None if none waits)."""
        with self._lock:
            row = self._db.execute(
                "SELECT min(next_attempt_at) FROM events WHERE state = ?", (FAILED,)
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def oldest_waiting(self, now: float, grace: float = 300.0) -> int | None:
        """The first sequence received over `grace` seconds ago and still waiting for a run:
        pending (left by a run that took its maximum or was stopped by the blast-radius guard)
        or claimed by a run that died. The grace leaves a requested run time to start."""
        with self._lock:
            row = self._db.execute(
                "SELECT min(sequence) FROM events WHERE received_at <= ? "
                "AND (state = ? OR (state = ? AND claimed_at <= ?))",
                (now - grace, PENDING, CLAIMED, now - self.claim_ttl),
            ).fetchone()
        return None if row[0] is None else int(row[0])

    # ---- a rules run's side -----------------------------------------------------------------

    def claim_due(self, run_id: str, now: float, limit: int = 1000) -> list[InboxEvent]:
        """Claim for `run_id` the pending events, the failed ones whose retry is due and those
        a crashed run left claimed, oldest first."""

        def work() -> list[InboxEvent]:
            rows = self._db.execute(
                "SELECT sequence, source, event_id, type, body, received_at, state, attempts, "
                "detail FROM events WHERE state = ? OR (state = ? AND next_attempt_at <= ?) "
                "OR (state = ? AND claimed_at <= ?) ORDER BY sequence LIMIT ?",
                (PENDING, FAILED, now, CLAIMED, now - self.claim_ttl, limit),
            ).fetchall()
            self._db.executemany(
                "UPDATE events SET state = ?, claimed_by = ?, claimed_at = ? WHERE sequence = ?",
                [(CLAIMED, run_id, now, row[0]) for row in rows],
            )
            return [InboxEvent(*row) for row in rows]

        return self._transaction(work)

    def release(self, sequences: Iterable[int], run_id: str) -> None:
        """Hand claimed events back untouched (a run that stopped before changing anything)."""
        self._transaction(
            lambda: self._db.executemany(
                "UPDATE events SET state = CASE WHEN attempts > 0 THEN ? ELSE ? END, "
                "claimed_by = NULL, claimed_at = NULL WHERE sequence = ? AND claimed_by = ?",
                [(FAILED, PENDING, s, run_id) for s in sequences],
            )
        )

    def resolve(
        self,
        sequence: int,
        run_id: str,
        state: str,
        detail: str,
        *,
        order_id: int | None = None,
        rule_id: str | None = None,
        now: float | None = None,
    ) -> str:
        """Record the outcome of a claimed event; FAILED becomes DEAD after MAX_ATTEMPTS. The
        state recorded is returned."""
        if state not in (APPLIED, SKIPPED, FAILED):
            raise ValueError(f"not an outcome: {state!r}")
        now = time.time() if now is None else now

        def work() -> str:
            row = self._db.execute(
                "SELECT attempts FROM events WHERE sequence = ? AND claimed_by = ?",
                (sequence, run_id),
            ).fetchone()
            if row is None:
                return state  # the claim was taken over meanwhile: the taker decides
            attempts = row[0] + (1 if state == FAILED else 0)
            final = DEAD if state == FAILED and attempts >= MAX_ATTEMPTS else state
            retry_at = now + retry_delay(attempts) if final == FAILED else None
            self._db.execute(
                "UPDATE events SET state = ?, attempts = ?, next_attempt_at = ?, detail = ?, "
                "order_id = ?, rule_id = ?, resolved_at = ?, claimed_by = NULL, "
                "claimed_at = NULL WHERE sequence = ?",
                (final, attempts, retry_at, detail, order_id, rule_id, now, sequence),
            )
            return final

        return self._transaction(work)

    # ---- reading ------------------------------------------------------------------------------

    def events(self, source: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT sequence, source, event_id, type, state, attempts, order_id, rule_id, "
            "detail, received_at, resolved_at FROM events"
        )
        sql += " WHERE source = ?" if source else ""
        with self._lock:
            cursor = self._db.execute(sql + " ORDER BY sequence", (source,) if source else ())
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def stats(self) -> dict[str, dict[str, int]]:
        """Per source: received (stored + duplicates), stored, each state, each counter."""
        with self._lock:
            states = self._db.execute(
                "SELECT source, state, count(*) FROM events GROUP BY source, state"
            ).fetchall()
            counters = self._db.execute("SELECT source, counter, count FROM counters").fetchall()
        stats: dict[str, dict[str, int]] = {}
        for source, state, n in states:
            entry = stats.setdefault(source, {})
            entry[state] = entry.get(state, 0) + n
            entry["stored"] = entry.get("stored", 0) + n
        for source, counter, n in counters:
            entry = stats.setdefault(source, {})
            entry[counter] = n
        for entry in stats.values():
            entry["received"] = entry.get("stored", 0) + entry.get(DUPLICATE, 0)
        return stats
