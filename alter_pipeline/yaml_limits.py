"""Limits on the YAML files people write (rules, webhooks, storefronts, inbound): size, nesting
depth, the length of one value and what aliases expand to.

PyYAML composes a node graph in which an alias is a reference, so a small file of nested
aliases (`a: &a [x, x, ...]`, `b: &b [*a, *a, ...]`, eight levels of nine) composes quickly and
then costs billions of steps to walk; a deeply nested list overflows the composer's recursion;
a 10 MB string gets echoed whole in error messages. `check_limits` reads the event stream once,
without recursion, before anything composes the document, and reports the first breach with
its line and column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 50
MAX_VALUE_CHARS = 10_000
# Values after alias expansion: far above any real configuration file, far below a bomb.
MAX_EXPANDED_VALUES = 100_000


@dataclass(frozen=True)
class YamlLimitError(ValueError):
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.message}"


def read_limited(path: Path) -> bytes:
    """The bytes of `path`, refusing (line 1) a file larger than MAX_FILE_BYTES unread."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise YamlLimitError(1, 1, _too_large(size))
    return path.read_bytes()


def check_limits(text: str) -> None:
    """Raise YamlLimitError at the first breach of a limit; YAML syntax errors are left to
    the composer (they surface the same way with or without this check)."""
    size = len(text.encode("utf-8", "surrogateescape"))
    if size > MAX_FILE_BYTES:
        raise YamlLimitError(1, 1, _too_large(size))
    try:
        _walk_events(text)
    except yaml.YAMLError:
        return


def compose(text: str) -> yaml.Node | None:
    """`yaml.compose` (safe) of a document within the limits."""
    check_limits(text)
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _walk_events(text: str) -> None:
    # One frame per open collection: its anchor and the values under it so far.
    frames: list[tuple[str | None, int]] = [(None, 0)]
    expanded: dict[str, int] = {}  # anchor -> values it stands for, once closed
    total = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        mark = event.start_mark
        if isinstance(event, yaml.CollectionStartEvent):
            if len(frames) > MAX_DEPTH:
                raise _at(mark, f"nested deeper than {MAX_DEPTH} levels")
            frames.append((event.anchor, 1))
            total += 1
            continue
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, count = frames.pop()
            if anchor is not None:
                expanded[anchor] = count
            parent_anchor, parent_count = frames[-1]
            frames[-1] = (parent_anchor, parent_count + count)
            continue
        elif isinstance(event, yaml.ScalarEvent):
            if len(event.value) > MAX_VALUE_CHARS:
                raise _at(
                    mark, f"a value of {len(event.value)} characters (at most {MAX_VALUE_CHARS})"
                )
            if event.anchor is not None:
                expanded[event.anchor] = 1
            added = 1
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in expanded:  # undefined, or an alias inside its own anchor
                open_anchors = {anchor for anchor, _ in frames}
                if event.anchor in open_anchors:
                    raise _at(mark, f"alias *{event.anchor} refers to itself")
                continue  # undefined: the composer reports it
            added = expanded[event.anchor]
        else:
            continue
        anchor, count = frames[-1]
        frames[-1] = (anchor, count + added)
        total += added
        if total > MAX_EXPANDED_VALUES:
            raise _at(
                mark,
                f"aliases expand to more than {MAX_EXPANDED_VALUES} values (nested aliases?)",
            )


def _at(mark: yaml.Mark | Any | None, message: str) -> YamlLimitError:
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return YamlLimitError(line, column, message)


def _too_large(size: int) -> str:
    return f"the file is {size} bytes (at most {MAX_FILE_BYTES})"
