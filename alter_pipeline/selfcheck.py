"""A sync's self-check: do the orders it is about to commit agree with the API's listing?

The API has no change feed, but every list response carries an exact `total`, for the whole
list and for each `order_status` filter. After a sync has read what it meant to read, it
compares the order ids it holds with that total; when they disagree it *locates* the
difference in the ascending-id listing instead of listing everything again.

How `locate` finds d differences among N orders in about d * log2(N / 50) page reads:

- A page read at offset `o` whose first id is `p` says that `o` rows of the listing sort
  before `p`; `held.count_below(p)` says how many the sync holds there. Between two pages read
  (or a page and an end of the list), the ids held in the gap and the rows the listing has in
  it (from the two offsets) must be equal; a gap where they are not is split by reading the
  page in its middle, until pages cover it and show its ids one by one.
- Inside a page the comparison is exact, id by id: ids held in the page's span that the page
  lacks are *extra* (deleted, or in a status listing: moved to another status); rows on the
  page the sync lacks are *missing*, and arrive with their list-shape rows.

Pages read at different moments disagree when rows were deleted in between (later rows shift
left): a page that contradicts an older neighbour replaces it, and every read counts against a
budget. Differences that cancel inside one gap (one order leaving a status while another
enters it) do not show in counts; they wait for a re-read or the reconcile.

`converge` is the loop a sync runs: read the newest end of the list (its `total`, and orders
newer than any held), compare, locate, let the caller confirm and apply what was found, until
the held ids and `total` agree at one read, or the rounds or the request budget run out.
Order ids are assumed to be assigned in ascending order (new orders sort last), as the pager
assumes too: orders created during a sync can only be missing above the highest id held.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from alter_pipeline.contract import MAX_PAGE_SIZE

PAGE = MAX_PAGE_SIZE
# Agreement must come within this many rounds (one read of `total` each, plus locating).
MAX_ROUNDS = 12


class ListingPage(Protocol):
    items: list[dict[str, Any]]
    total: int


ReadPage = Callable[[int], ListingPage]
"""offset -> the page of `PAGE` rows at that offset of an ascending-id listing."""


def row_id(row: Any) -> int | None:
    value = row.get("id") if isinstance(row, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class HeldIds:
    """The ascending order ids a sync holds (or a status's share of them)."""

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self._ids = sorted(set(ids))

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, order_id: object) -> bool:
        if not isinstance(order_id, int):  # not an id: never held (and not comparable)
            return False
        i = bisect.bisect_left(self._ids, order_id)
        return i < len(self._ids) and self._ids[i] == order_id

    @property
    def highest(self) -> int:
        return self._ids[-1] if self._ids else 0

    def count_below(self, order_id: float) -> int:
        return bisect.bisect_left(self._ids, order_id)

    def count_upto(self, order_id: float) -> int:
        return bisect.bisect_right(self._ids, order_id)

    def between(self, low: float, high: float) -> list[int]:
        """Held ids in the closed range [low, high]."""
        return self._ids[self.count_below(low) : self.count_upto(high)]

    def update(self, add: Iterable[int] = (), remove: Iterable[int] = ()) -> None:
        gone, new = set(remove), set(add)
        if new - gone or gone:
            self._ids = sorted((set(self._ids) - gone) | (new - gone))


@dataclass
class Difference:
    """What `locate` found: `extra` ids held but not listed, `missing` rows listed but not
    held (by id), `unkeyed` rows listed without a usable id (a sync can hold them only as
    rejected records), `reads` pages spent, `exhausted` when the budget ran out first."""

    extra: set[int] = field(default_factory=set)
    missing: dict[int, dict[str, Any]] = field(default_factory=dict)
    unkeyed: list[dict[str, Any]] = field(default_factory=list)
    reads: int = 0
    exhausted: bool = False


@dataclass(frozen=True)
class _Probe:
    """A page read at `offset`: its ids, and whether it was the end of the list."""

    offset: int
    ids: list[int]
    last: bool

    @property
    def end(self) -> int:
        return self.offset + len(self.ids)


@dataclass(frozen=True)
class _Gap:
    after: _Probe | None  # None: the start of the list
    before: _Probe | None  # None: the end of the list
    held: int
    listed: int

    def probe_offset(self) -> int:
        start = self.after.end if self.after else 0
        if self.listed <= PAGE - 2:
            # The whole gap fits one page that overlaps the probe before it by a row.
            return max(0, start - 1)
        return max(0, start + self.listed // 2 - PAGE // 2)


def locate(held: HeldIds, read: ReadPage, total: int, budget: int) -> Difference:
    """Find where `held` and the listing `read` pages from differ (see the module doc)."""
    found = Difference()
    probes: list[_Probe] = []
    while (gap := _first_uneven_gap(held, probes, total)) is not None:
        if found.reads >= budget:
            found.exhausted = True
            break
        offset = gap.probe_offset()
        page = read(offset)
        found.reads += 1
        total = page.total
        ids = [row_id(row) for row in page.items]
        # A row without a usable id sits inside the page's span: it explains a gap's count
        # once a page covers it, and is counted apart (see `converge`).
        found.unkeyed += [row for row, i in zip(page.items, ids, strict=True) if i is None]
        probe = _Probe(offset, [i for i in ids if i is not None], len(ids) < PAGE)
        _compare(held, probe, page.items, found, first=offset == 0)
        if not probe.ids and offset == 0:
            break  # the list is empty: every id held is extra, nothing else to find
        if not probe.ids:
            # Past the end of the list: pages reaching beyond `total` had shifted since.
            probes = [p for p in probes if p.end <= total]
        probes = _insert(probes, probe)
    return found


def _compare(
    held: HeldIds, probe: _Probe, rows: list[dict[str, Any]], found: Difference, first: bool
) -> None:
    """Id-by-id comparison over the span the page proves (from -inf at offset 0, to +inf
    when it is the end of the list)."""
    if not probe.ids:
        if first:  # an empty list: everything held is extra
            found.extra.update(held.between(-math.inf, math.inf))
        return
    low = -math.inf if first else probe.ids[0]
    high = math.inf if probe.last else probe.ids[-1]
    listed = set(probe.ids)
    found.extra.update(i for i in held.between(low, high) if i not in listed)
    for row in rows:
        order_id = row_id(row)
        if order_id is not None and order_id not in held:
            found.missing[order_id] = row


def _insert(probes: list[_Probe], new: _Probe) -> list[_Probe]:
    """Add a page; older pages whose offsets contradict it (rows shifted meanwhile) go."""
    if not new.ids:
        return probes
    kept = [p for p in probes if not _contradicts(p, new)]
    kept.append(new)
    kept.sort(key=lambda p: p.ids[0])
    return kept


def _contradicts(old: _Probe, new: _Probe) -> bool:
    """Two pages that cannot both be true now: one starts after the other ends in ids but
    not in offsets (or the reverse)."""
    if old.ids[-1] < new.ids[0]:
        return old.end > new.offset
    if new.ids[-1] < old.ids[0]:
        return new.end > old.offset
    return old.last and new.ids[-1] > old.ids[-1]


def _first_uneven_gap(held: HeldIds, probes: list[_Probe], total: int) -> _Gap | None:
    """The first stretch between pages (or the ends) whose held and listed counts differ."""
    after: _Probe | None = None
    reach, reach_end = -math.inf, 0  # the highest id any page so far showed, and its offset
    for probe in probes:
        # A page at offset 0 proves its span from the start of the list.
        if probe.offset > 0 and probe.ids[0] > reach:
            listed = probe.offset - reach_end
            count = held.count_below(probe.ids[0]) - held.count_upto(reach)
            if count != listed:
                return _Gap(after, probe, count, listed)
        if probe.ids[-1] >= reach:
            after, reach, reach_end = probe, probe.ids[-1], probe.end
        if probe.last:
            return None
    count = len(held) - held.count_upto(reach)
    listed = total - reach_end
    return _Gap(after, None, count, listed) if count != listed else None


def locate_cost(differences: int, size: int) -> int:
    """Page reads `locate` needs, about, for `differences` among `size` ids."""
    return differences * max(1, math.ceil(math.log2(max(size, PAGE) / PAGE)) + 1)


def listing_cost(size: int) -> int:
    """Page reads of a full listing (pages overlap by one row)."""
    return max(1, math.ceil(size / (PAGE - 1)))


# ---- the loop a sync runs ----------------------------------------------------------------


@dataclass
class Convergence:
    """How a sync's held ids came to agree with the API (or why not).

    `path`: "agreed" (at the first read of `total`), "located" (after locating differences),
    "escalate" (locating would cost more than a full listing: `reason` says why),
    "unresolved" (no agreement within the rounds or the budget). Rows the listing shows
    without a usable id count towards `total` as themselves (`unkeyed_rows`, by content)."""

    path: str = "agreed"
    reason: str = ""
    total: int = 0
    rounds: int = 0
    total_reads: int = 0
    locate_reads: int = 0
    deleted: set[int] = field(default_factory=set)
    new_rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    found_missing: int = 0  # of new_rows: found by locating, not at the newest end
    unkeyed: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def agreed(self) -> bool:
        return self.path in ("agreed", "located")

    @property
    def unkeyed_rows(self) -> list[dict[str, Any]]:
        return list(self.unkeyed.values())

    def take_unkeyed(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.unkeyed.setdefault(json.dumps(row, sort_keys=True, default=str), row)


Confirm = Callable[[set[int]], set[int]]
"""extra ids -> those the API no longer has (e.g. by a batch read)."""


def converge(
    held: HeldIds,
    read_newest: ReadPage,
    read_listing: ReadPage,
    confirm: Confirm,
    *,
    budget: int,
    escalate: bool,
    rounds: int = MAX_ROUNDS,
) -> Convergence:
    """Bring `held` into agreement with the listing: each round reads the newest end of the
    list (`read_newest`: pages in descending id order) for `total` and for orders newer than
    any held, then, if the counts differ, locates the difference (`read_listing`: ascending
    pages) and confirms extra ids with `confirm`. `held` is updated in place. With
    `escalate`, a difference whose locating would cost more than `budget` reads ends the
    check at once (path "escalate"), before any locating."""
    result = Convergence()
    while result.rounds < rounds:
        result.rounds += 1
        _read_newest(held, read_newest, result)
        difference = len(held) + len(result.unkeyed) - result.total
        if difference == 0:
            return result
        spent = result.locate_reads
        if escalate and spent + locate_cost(abs(difference), len(held)) > budget:
            result.path = "escalate"
            result.reason = (
                f"{len(held)} orders held, the API reports {result.total}: locating "
                f"~{locate_cost(abs(difference), len(held))} pages would cost more than a "
                f"full listing ({budget} pages)"
            )
            return result
        found = locate(held, read_listing, result.total - len(result.unkeyed), budget - spent)
        result.take_unkeyed(found.unkeyed)
        result.locate_reads += found.reads
        result.path = "located"
        deleted = confirm(found.extra) if found.extra else set()
        result.deleted |= deleted
        result.new_rows.update(found.missing)
        result.found_missing += len(found.missing)
        held.update(add=found.missing, remove=deleted)
    result.path = "escalate" if escalate else "unresolved"
    result.reason = (
        f"{len(held)} orders held but the API reported {result.total} after "
        f"{result.rounds} rounds and {result.locate_reads} page reads of locating "
        "(the store kept changing faster than it could be compared)"
    )
    return result


def _read_newest(held: HeldIds, read_newest: ReadPage, result: Convergence) -> None:
    """Read from the newest end down to the highest id held; newer rows join `held`, rows
    without a usable id are kept apart (for rejected_records, and for the count)."""
    offset, highest = 0, held.highest
    while True:
        page = read_newest(offset)
        result.total_reads += 1
        if offset == 0:
            result.total = page.total
        ids = [row_id(row) for row in page.items]
        result.take_unkeyed(row for row, i in zip(page.items, ids, strict=True) if i is None)
        newer = {i: row for i, row in zip(ids, page.items, strict=True) if i and i > highest}
        result.new_rows.update(newer)
        held.update(add=newer)
        reached_held = any(i is not None and i <= highest for i in ids)
        if len(page.items) < PAGE or reached_held:
            return
        offset += PAGE
