"""Range proofs: which closed id ranges a listing's pages proved complete."""

from __future__ import annotations

NEG_INF = float("-inf")
POS_INF = float("inf")


class Coverage:
    """Closed id ranges proven complete; -inf / +inf mean 'from the start' / 'to the end'.

    Ids are integers, so ranges [a, b] and [b + 1, c] join: there is no id between them.
    """

    def __init__(self) -> None:
        self._spans: list[tuple[float, float]] = []
        self._dirty = False

    def add(self, start: float, end: float) -> None:
        self._spans.append((start, end))
        self._dirty = True

    def spans(self) -> list[tuple[float, float]]:
        if self._dirty:
            merged: list[tuple[float, float]] = []
            for start, end in sorted(self._spans):
                if merged and start <= merged[-1][1] + 1:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], end))
                else:
                    merged.append((start, end))
            self._spans, self._dirty = merged, False
        return self._spans

    def holes(self) -> list[tuple[float, float]]:
        """Open id intervals not proven complete, in ascending order."""
        spans = self.spans()
        if not spans:
            return [(NEG_INF, POS_INF)]
        found = [(spans[i][1], spans[i + 1][0]) for i in range(len(spans) - 1)]
        if spans[0][0] > NEG_INF:
            found.insert(0, (NEG_INF, spans[0][0]))
        if spans[-1][1] < POS_INF:
            found.append((spans[-1][1], POS_INF))
        return found

    def reopen_tail(self, last_id: float) -> None:
        """Forget that the end of the list was reached (rows may have been added since)."""
        spans = self.spans()
        if spans and spans[-1][1] == POS_INF:
            spans[-1] = (spans[-1][0], last_id)


def page_span(offset: int, limit: int, ids: list[int], size: int) -> tuple[float, float] | None:
    """The id range a page of `size` rows (valid `ids` among them) proves complete."""
    if not ids:
        # An empty first page proves the list was empty; a later empty page proves nothing.
        return (NEG_INF, POS_INF) if offset == 0 and size == 0 else None
    start = NEG_INF if offset == 0 else ids[0]
    end = POS_INF if size < limit else ids[-1]
    return (start, end)
