"""A durable ledger of status transitions: claimed before each PATCH, resolved after it.

SQLite in WAL mode under $ALTER_DATA_DIR/rules/ledger.sqlite. A transition is keyed by
(order_id, rule_id, from_status, to_status, eval_key), where eval_key is the data version the
rule was evaluated on. Claims are taken in one `BEGIN IMMEDIATE` transaction, which SQLite
serialises across threads and processes, so of two racing runs exactly one gets each key, and a
key already applied is never applied again. A claim is refused too when:

* another transition of the same order is in flight (claimed by another run, not yet stale), so
  two runs evaluated on different snapshots cannot both PATCH one order at once;
* a different rule applied the opposite move to this order (it moved the order out of the
  status this rule would move it into): two rules never fight over an order.

A claim left by a crashed run goes stale after `claim_ttl` seconds and may be taken over; the
taker re-reads the order before any PATCH, so a PATCH that did go through is seen as already
applied.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CLAIMED, APPLIED, SKIPPED, FAILED = "claimed", "applied", "skipped", "failed"
LEDGER_FILE = Path("rules") / "ledger.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transitions (
    order_id    INTEGER NOT NULL,
    rule_id     TEXT    NOT NULL,
    from_status TEXT    NOT NULL,
    to_status   TEXT    NOT NULL,
    eval_key    TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    run_id      TEXT    NOT NULL,
    claimed_at  REAL    NOT NULL,
    resolved_at REAL,
    detail      TEXT,
    PRIMARY KEY (order_id, rule_id, from_status, to_status, eval_key)
);
CREATE INDEX IF NOT EXISTS transitions_by_order ON transitions (order_id, state);
"""


@dataclass(frozen=True)
class Key:
    order_id: int
    rule_id: str
    from_status: str
    to_status: str
    eval_key: str

    def values(self) -> tuple[int, str, str, str, str]:
        return (self.order_id, self.rule_id, self.from_status, self.to_status, self.eval_key)


@dataclass(frozen=True)
class Entry:
    key: Key
    state: str
    run_id: str
    detail: str | None


_WHERE_KEY = "order_id = ? AND rule_id = ? AND from_status = ? AND to_status = ? AND eval_key = ?"


class Ledger:
    def __init__(self, path: Path, *, claim_ttl: float = 900.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.claim_ttl = claim_ttl
        self._lock = threading.Lock()  # one connection, shared by the PATCH workers
        self._db = sqlite3.connect(
            path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a recorded claim survives a power cut
        self._db.executescript(_SCHEMA)

    @classmethod
    def for_data_dir(cls, data_dir: Path, **kwargs: float) -> Ledger:
        return cls(Path(data_dir) / LEDGER_FILE, **kwargs)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- claiming -----------------------------------------------------------------------------

    def claim(self, keys: Iterable[Key], run_id: str) -> dict[Key, str | None]:
        """Claim each key for `run_id`: None where claimed, else the reason it was refused."""
        now = time.time()
        outcome: dict[Key, str | None] = {}
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for key in keys:
                    refusal = self._refusal(key, run_id, now)
                    if refusal is None:
                        self._take(key, run_id, now)
                    outcome[key] = refusal
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return outcome

    def _refusal(self, key: Key, run_id: str, now: float) -> str | None:
        row = self._db.execute(
            f"SELECT state, run_id, claimed_at FROM transitions WHERE {_WHERE_KEY}", key.values()
        ).fetchone()
        if row is not None:
            state, owner, claimed_at = row
            if state == APPLIED:
                return f"already applied by run {owner}"
            if state == CLAIMED and owner != run_id and claimed_at > now - self.claim_ttl:
                return f"being applied by run {owner}"
        busy = self._db.execute(
            "SELECT rule_id, run_id FROM transitions WHERE order_id = ? AND state = ? "
            "AND run_id <> ? AND claimed_at > ? AND NOT (" + _WHERE_KEY + ") LIMIT 1",
            (key.order_id, CLAIMED, run_id, now - self.claim_ttl, *key.values()),
        ).fetchone()
        if busy is not None:
            return f"rule {busy[0]} of run {busy[1]} is changing this order right now"
        undone = self._db.execute(
            "SELECT rule_id, from_status, to_status, run_id FROM transitions "
            "WHERE order_id = ? AND state = ? AND rule_id <> ? AND from_status = ? "
            "ORDER BY resolved_at DESC LIMIT 1",
            (key.order_id, APPLIED, key.rule_id, key.to_status),
        ).fetchone()
        if undone is not None:
            rule, old, new, owner = undone
            return f"would undo rule {rule}, which moved it from {old} to {new} in run {owner}"
        return None

    def _take(self, key: Key, run_id: str, now: float) -> None:
        self._db.execute(
            "INSERT INTO transitions (order_id, rule_id, from_status, to_status, eval_key, "
            "state, run_id, claimed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO UPDATE SET state = excluded.state, run_id = excluded.run_id, "
            "claimed_at = excluded.claimed_at, resolved_at = NULL, detail = NULL",
            (*key.values(), CLAIMED, run_id, now),
        )

    # ---- resolving ----------------------------------------------------------------------------

    def resolve(self, key: Key, run_id: str, state: str, detail: str = "") -> None:
        """Record the outcome of a claimed transition (applied, skipped or failed)."""
        if state not in (APPLIED, SKIPPED, FAILED):
            raise ValueError(f"not a final state: {state!r}")
        with self._lock:
            self._db.execute(
                f"UPDATE transitions SET state = ?, detail = ?, resolved_at = ? "
                f"WHERE {_WHERE_KEY} AND run_id = ?",
                (state, detail, time.time(), *key.values(), run_id),
            )

    def entries(self, order_id: int | None = None) -> list[Entry]:
        sql = "SELECT order_id, rule_id, from_status, to_status, eval_key, state, run_id, detail "
        sql += "FROM transitions" + (" WHERE order_id = ?" if order_id is not None else "")
        with self._lock:
            rows = self._db.execute(sql, () if order_id is None else (order_id,)).fetchall()
        return [Entry(Key(*row[:5]), row[5], row[6], row[7]) for row in rows]

    # ---- retention ----------------------------------------------------------------------------

    def prune(self, before: float) -> int:
        """Forget finished transitions (applied, skipped, failed) resolved before `before`;
        returns how many. Claims in flight stay whatever their age (a crashed run's claim is
        what makes the next run re-read the order first), and so does the newest applied
        transition of each order, rule, from and to: the "would undo another rule" check
        reads it, however old. An older row's data version (`eval_key`) cannot come back:
        rules runs evaluate the current snapshot only."""
        with self._lock:
            return self._db.execute(
                "DELETE FROM transitions AS t WHERE t.state IN (?, ?, ?) AND t.resolved_at < ? "
                "AND NOT (t.state = ? AND t.resolved_at = (SELECT max(n.resolved_at) "
                "FROM transitions n WHERE n.order_id = t.order_id AND n.rule_id = t.rule_id "
                "AND n.from_status = t.from_status AND n.to_status = t.to_status "
                "AND n.state = ?))",
                (APPLIED, SKIPPED, FAILED, before, APPLIED, APPLIED),
            ).rowcount
