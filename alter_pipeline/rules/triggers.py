"""Event-driven rules: the `on:` trigger and the `order_id:` path of a rule.

    - id: paid-on-stripe-checkout
      on: {source: stripe, type: checkout.session.completed}   # type: one, a list, or "*"
      order_id: data.object.metadata.alter_order_id            # where the event names the order
      when: {status: {in: [processing]}}
      then: {set_status: paid}

A rule with `on:` is never evaluated over the warehouse: it acts only on the verified inbound
events of its source (alter_pipeline/inbound), one order per event. `order_id` is a dotted path
into the event's JSON body; a segment of digits indexes a list (`data.items.0.order`).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import yaml

from alter_pipeline.rules import model

TRIGGER_KEYS = ("source", "type")
PATH = re.compile(r"[A-Za-z0-9_$@-]+(?:\.[A-Za-z0-9_$@-]+)*")
EVENT_TYPE = re.compile(r"[A-Za-z0-9_./:*-]{1,128}")
_SOURCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # inbound.yaml's source ids


def parse_trigger(
    parser: Any,
    on_node: yaml.Node | None,
    path_node: yaml.Node | None,
    rule_node: yaml.Node,
    known_sources: Collection[str] | None,
) -> Any:
    """The rule's `model.Trigger`, or the parser's bad-value marker (problems recorded).

    `parser` is rules.parse's parser: its `problem`, `pairs` and `scalar` are used, so the
    problems carry line and column like every other one of the file."""
    bad = parser.bad
    if on_node is None:
        parser.problem(path_node, "`order_id` belongs to a rule with `on:` (an event trigger)")
        return bad
    if path_node is None:
        parser.problem(rule_node, "a rule with `on:` needs `order_id:` (a path into the event)")
        return bad
    entries = {key: (k, v) for key, k, v in parser.pairs(on_node, "`on` ({source, type})")}
    for key, (key_node, _) in entries.items():
        if key not in TRIGGER_KEYS:
            parser.problem(key_node, f"unknown key {key!r} of `on` (allowed: source, type)")
    missing = [k for k in TRIGGER_KEYS if k not in entries]
    for key in missing:
        if isinstance(on_node, yaml.MappingNode):
            parser.problem(on_node, f"`on` is missing `{key}`")
    if missing:
        return bad
    source = _source(parser, entries["source"][1], known_sources)
    types = _types(parser, entries["type"][1])
    path = _path(parser, path_node)
    if bad in (source, types, path):
        return bad
    return model.Trigger(source, types, path, mark=parser.mark(on_node))


def _source(parser: Any, node: yaml.Node, known: Collection[str] | None) -> Any:
    value = parser.scalar(node)
    if not isinstance(value, str) or not _SOURCE_ID.fullmatch(value):
        parser.problem(node, "`source` must be the id of a source of inbound.yaml")
        return parser.bad
    if known is not None and value not in known:
        names = ", ".join(sorted(known)) or "none"
        parser.problem(node, f"unknown source {value!r} (inbound.yaml defines: {names})")
        return parser.bad
    return value


def _types(parser: Any, node: yaml.Node) -> Any:
    nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
    values = [parser.scalar(n) for n in nodes]
    for item, value in zip(nodes, values, strict=True):
        if not isinstance(value, str) or not EVENT_TYPE.fullmatch(value):
            parser.problem(item, "`type` must be an event type (e.g. checkout.session.completed)")
            return parser.bad
    if not values:
        parser.problem(node, "`type` needs at least one event type")
        return parser.bad
    return tuple(values)


def _path(parser: Any, node: yaml.Node) -> Any:
    value = node.value if isinstance(node, yaml.ScalarNode) else None
    if not isinstance(value, str) or not PATH.fullmatch(value):
        parser.problem(
            node,
            f"bad order_id path {value!r}: expected names separated by dots, e.g. "
            "data.object.metadata.alter_order_id",
        )
        return parser.bad
    return tuple(value.split("."))


# ---- reading events -------------------------------------------------------------------------


def type_matches(trigger: model.Trigger, event_type: str) -> bool:
    return any(t == "*" or _glob(t).fullmatch(event_type) for t in trigger.types)


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern))


def value_at(payload: Any, path: tuple[str, ...]) -> Any:
    """The value at `path` in a parsed JSON body, or None if the path leads nowhere."""
    current = payload
    for segment in path:
        if isinstance(current, dict):
            current = current.get(segment)
        elif isinstance(current, list) and segment.isdigit() and int(segment) < len(current):
            current = current[int(segment)]
        else:
            return None
    return current


def order_id_at(payload: Any, path: tuple[str, ...]) -> int | None:
    """The order id the event names at `path`: an integer, or a string of digits."""
    value = value_at(payload, path)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 18:
        return int(value.strip()) or None
    return None
