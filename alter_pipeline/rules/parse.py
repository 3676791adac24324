"""Read a rules file into a `RuleSet`, reporting every problem with its line and column.

The YAML is composed into nodes (`yaml.compose`), not loaded, so each problem can point at the
exact key or value it is about; scalars are then typed with PyYAML's safe constructor. Nothing
in the file is executed: it only names fields from the whitelist (fields.py), operators and
literal values. Parsing goes on after a problem, so one `rules check` lists them all.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Collection, Iterator
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from alter_pipeline import yaml_limits
from alter_pipeline.contract import ORDER_STATUSES
from alter_pipeline.contract.fields import as_utc
from alter_pipeline.rules import model
from alter_pipeline.rules.fields import (
    ALL_OPERATORS,
    FIELDS,
    LIST_OPERATORS,
    OPERATORS,
    Field,
    Kind,
    Scope,
    parse_duration,
)
from alter_pipeline.rules.transitions import TransitionTable, forbidden_moves
from alter_pipeline.rules.triggers import parse_trigger
from alter_pipeline.storefronts import NAME as STOREFRONT_NAME

RULE_KEYS = (
    "id",
    "description",
    "enabled",
    "priority",
    "dry_run",
    "max_per_run",
    "storefronts",
    "on",
    "order_id",
    "when",
    "then",
)
TOP_KEYS = ("rules", "transitions", "max_transitions_per_run")
COMBINATORS = ("all", "any", "not", "any_item", "all_items")
ACTIONS = ("set_status", "set_quantity")
RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_MAX_NUMBER = Decimal(10) ** 14  # the lake's DECIMAL(18, 4) holds 14 integer digits
_BAD = object()  # a value that failed validation (its problem is already recorded)


class RulesError(ValueError):
    """A rules file with problems; `lines()` formats each as `FILE:LINE:COL: message`."""

    def __init__(self, problems: list[model.Problem], source: str) -> None:
        self.problems = sorted(problems, key=lambda p: p.mark)
        self.source = source
        first = self.problems[0].format(source) if self.problems else source
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(first + more)

    def lines(self) -> list[str]:
        return [p.format(self.source) for p in self.problems]


def load_rules(path: Path) -> model.RuleSet:
    """Parse the rules file at `path`; RulesError (with marks) if it is missing or invalid."""
    try:
        data = yaml_limits.read_limited(Path(path))
    except OSError as error:
        reason = error.strerror or str(error)
        raise RulesError([model.Problem(model.Mark(1, 1), reason)], str(path)) from error
    except yaml_limits.YamlLimitError as breach:
        problem = model.Problem(model.Mark(breach.line, breach.column), breach.message)
        raise RulesError([problem], str(path)) from None
    return parse_rules(data.decode("utf-8", errors="replace"), source=str(path), path=Path(path))


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_rules(
    text: str,
    source: str = "<rules>",
    path: Path | None = None,
    known_sources: Collection[str] | None = None,
) -> model.RuleSet:
    """`known_sources`: the source ids of inbound.yaml, when `on:` sources are to be checked."""
    parser = _Parser()
    parser.known_sources = known_sources
    ruleset = parser.document(text)
    if parser.problems or ruleset is None:
        raise RulesError(parser.problems, source)
    return model.RuleSet(
        rules=ruleset.rules,
        transitions=ruleset.transitions,
        max_transitions_per_run=ruleset.max_transitions_per_run,
        source=path,
        content_hash=content_hash(text),
    )


def _mark(node: yaml.Node | None) -> model.Mark:
    if node is None:
        return model.Mark(1, 1)
    return model.Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _value_of(node: yaml.Node, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if getattr(k, "value", None) == key), None)


def _suggest(word: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _show(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Parser:
    bad = _BAD  # for the helpers of triggers.py

    def __init__(self) -> None:
        self.problems: list[model.Problem] = []
        self.known_sources: Collection[str] | None = None
        self._constructor = yaml.SafeLoader("")
        self._re2: Any = None  # a DuckDB connection, opened on the first `matches`

    def problem(self, node: yaml.Node | None, message: str) -> None:
        self.problems.append(model.Problem(_mark(node), message))

    @staticmethod
    def mark(node: yaml.Node | None) -> model.Mark:
        return _mark(node)

    # ---- YAML shapes ------------------------------------------------------------------------

    def pairs(self, node: yaml.Node, what: str) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping; reports non-mappings and duplicate keys."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"expected {what} (a mapping), got {self._kind(node)}")
            return
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            # A plain `on:` (or yes/no/off) is a boolean to YAML 1.1; as a key it is a name.
            plain_bool = isinstance(key_node, yaml.ScalarNode) and key_node.tag.endswith(":bool")
            key = key_node.value if plain_bool else self.scalar(key_node)
            if not isinstance(key, str):
                self.problem(key_node, f"keys of {what} must be names, got {_show(key)}")
                continue
            if key in seen:
                line = _mark(seen[key]).line
                self.problem(key_node, f"duplicate key {key!r} (first at line {line})")
                continue
            seen[key] = key_node
            yield key, key_node, value_node

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"expected {what} (a list), got {self._kind(node)}")
            return None
        return list(node.value)

    def scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return _BAD
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as error:
            self.problem(node, f"unreadable value: {error}")
            return _BAD

    def _kind(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        return _show(self.scalar(node))

    def typed(self, node: yaml.Node, expected: type, what: str) -> Any:
        """A scalar of type `expected` (a bool is not accepted as an int), else a problem."""
        value = self.scalar(node)
        wrong_bool = isinstance(value, bool) and expected is not bool
        if value is _BAD or wrong_bool or not isinstance(value, expected):
            self.problem(node, f"{what} must be {_TYPE_NAMES[expected]}, got {self._kind(node)}")
            return _BAD
        return value

    # ---- the document -------------------------------------------------------------------------

    def document(self, text: str) -> model.RuleSet | None:
        try:
            root = yaml_limits.compose(text)
        except yaml_limits.YamlLimitError as breach:
            self.problems.append(
                model.Problem(model.Mark(breach.line, breach.column), breach.message)
            )
            return None
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = model.Mark(mark.line + 1, mark.column + 1) if mark else model.Mark(1, 1)
            self.problems.append(model.Problem(where, f"not valid YAML: {error.problem}"))
            return None
        if root is None:
            self.problem(None, "the file is empty: expected a mapping with a `rules:` list")
            return None
        entries = {key: (k, v) for key, k, v in self.pairs(root, "a rules file")}
        for key, (key_node, _) in entries.items():
            if key not in TOP_KEYS:
                self.problem(key_node, f"unknown key {key!r}{_suggest(key, TOP_KEYS)}")
        table = self.transitions(entries["transitions"][1]) if "transitions" in entries else None
        limit = model.DEFAULT_MAX_TRANSITIONS_PER_RUN
        if "max_transitions_per_run" in entries:
            limit = self.count(entries["max_transitions_per_run"][1], "max_transitions_per_run")
        if "rules" not in entries:
            if isinstance(root, yaml.MappingNode):
                self.problem(root, "missing `rules:` (a list of rules)")
            return None
        rules = self.rules(entries["rules"][1], table or TransitionTable.default())
        if self.problems:
            return None
        return model.RuleSet(rules, table or TransitionTable.default(), limit)

    def count(self, node: yaml.Node, what: str) -> Any:
        value = self.typed(node, int, what)
        if value is not _BAD and value < 0:
            self.problem(node, f"{what} must be 0 or more, got {value}")
            return _BAD
        return value

    def transitions(self, node: yaml.Node) -> TransitionTable | None:
        rows: dict[str, tuple[str, ...]] = {}
        for status, key_node, value_node in self.pairs(node, "`transitions`"):
            if status not in ORDER_STATUSES:
                self.problem(key_node, _unknown_status(status))
                continue
            if isinstance(value_node, yaml.ScalarNode) and self.scalar(value_node) is None:
                rows[status] = ()  # `completed: ~` means final
                continue
            targets = []
            for target_node in self.sequence(value_node, f"statuses {status} may move to") or []:
                target = self.scalar(target_node)
                if target not in ORDER_STATUSES:
                    self.problem(target_node, _unknown_status(target))
                elif target != status:
                    targets.append(target)
            rows[status] = tuple(targets)
        return TransitionTable.default().with_overrides(rows)

    def rules(self, node: yaml.Node, table: TransitionTable) -> tuple[model.Rule, ...]:
        rules: list[model.Rule] = []
        first_line: dict[str, int] = {}
        for index, rule_node in enumerate(self.sequence(node, "`rules`") or []):
            id_node = _value_of(rule_node, "id")
            if isinstance(id_node, yaml.ScalarNode):
                rule_id = id_node.value
                if rule_id in first_line:
                    line = first_line[rule_id]
                    self.problem(id_node, f"duplicate rule id {rule_id!r} (first at line {line})")
                else:
                    first_line[rule_id] = _mark(id_node).line
            # A duplicate is still checked: its other mistakes are reported in the same pass.
            rule = self.rule(rule_node, index)
            if rule is not None:
                self.check_moves(rule, table)
                rules.append(rule)
        return tuple(rules)

    def check_moves(self, rule: model.Rule, table: TransitionTable) -> None:
        forbidden = forbidden_moves(rule, table)
        if not forbidden:
            return
        target = rule.target_status
        details = "; ".join(
            f"{s} may move to {', '.join(table.targets(s)) or 'nothing (final)'}" for s in forbidden
        )
        self.problems.append(
            model.Problem(
                rule.then.mark,
                f"rule {rule.id!r}: moving {' / '.join(forbidden)} to {target} is not allowed "
                f"({details}); restrict `status` in `when`, or allow the move under `transitions:`",
            )
        )

    # ---- one rule -----------------------------------------------------------------------------

    def rule(self, node: yaml.Node, index: int) -> model.Rule | None:
        before = len(self.problems)
        entries = {key: (k, v) for key, k, v in self.pairs(node, "a rule")}
        if not isinstance(node, yaml.MappingNode):
            return None
        for key, (key_node, _) in entries.items():
            if key not in RULE_KEYS:
                self.problem(key_node, f"unknown rule key {key!r}{_suggest(key, RULE_KEYS)}")
        missing = [key for key in ("id", "when", "then") if key not in entries]
        for key in missing:
            self.problem(node, f"rule is missing `{key}`")
        if missing:
            return None
        rule_id = self.rule_id(entries["id"][1])
        fields: dict[str, Any] = {}
        for key, expected, default in (
            ("description", str, ""),
            ("enabled", bool, True),
            ("dry_run", bool, False),
            ("priority", int, 0),
        ):
            fields[key] = self.typed(entries[key][1], expected, key) if key in entries else default
        if "max_per_run" in entries:
            fields["max_per_run"] = self.count(entries["max_per_run"][1], "max_per_run")
        if "storefronts" in entries:
            fields["storefronts"] = self.storefront_names(entries["storefronts"][1])
        if "on" in entries or "order_id" in entries:
            fields["on"] = parse_trigger(
                self,
                entries.get("on", (None, None))[1],
                entries.get("order_id", (None, None))[1],
                node,
                self.known_sources,
            )
        when = self.condition(entries["when"][1], Scope.ORDER)
        then = self.action(entries["then"][1])
        if len(self.problems) > before:
            return None
        return model.Rule(
            id=rule_id, when=when, then=then, index=index, mark=_mark(entries["id"][1]), **fields
        )

    def storefront_names(self, node: yaml.Node) -> Any:
        """`storefronts: [berlin, paris]` (or one name): the storefronts.yaml names the rule
        is limited to."""
        values = (
            [self.scalar(n) for n in node.value]
            if isinstance(node, yaml.SequenceNode)
            else [self.scalar(node)]
        )
        bad = [v for v in values if not isinstance(v, str) or not STOREFRONT_NAME.fullmatch(v)]
        if bad or not values:
            self.problem(node, "storefronts must be a list of storefront names of storefronts.yaml")
            return _BAD
        return tuple(values)

    def rule_id(self, node: yaml.Node) -> Any:
        # An id is a name: take the text as written, so `id: off` or `id: 7` are ids too.
        value = node.value if isinstance(node, yaml.ScalarNode) else self.scalar(node)
        if not isinstance(value, str) or not RULE_ID.fullmatch(value):
            self.problem(node, f"rule id must be letters, digits, _ . : - ; got {_show(value)}")
            return _BAD
        return value

    def action(self, node: yaml.Node) -> Any:
        entries = list(self.pairs(node, "`then` (e.g. {set_status: cancelled})"))
        if isinstance(node, yaml.MappingNode) and len(entries) != 1:
            self.problem(node, "`then` must hold exactly one action, e.g. {set_status: cancelled}")
            return _BAD
        for name, key_node, value_node in entries:
            if name == "set_status":
                status = self.scalar(value_node)
                if status not in ORDER_STATUSES:
                    self.problem(value_node, _unknown_status(status))
                    return _BAD
                return model.SetStatus(status, _mark(value_node))
            if name == "set_quantity":
                self.problem(key_node, "set_quantity is not supported yet: use set_status")
            else:
                self.problem(key_node, f"unknown action {name!r}{_suggest(name, ACTIONS)}")
        return _BAD

    # ---- conditions ---------------------------------------------------------------------------

    def condition(self, node: yaml.Node, scope: Scope) -> Any:
        what = "a condition: field: {operator: value}, or all / any / not"
        if scope is Scope.ORDER:
            what += " / any_item / all_items"
        parts = [self.entry(k, kn, vn, scope) for k, kn, vn in self.pairs(node, what)]
        if isinstance(node, yaml.MappingNode) and not node.value:
            self.problem(node, "empty condition: name at least one field")
        if not parts or any(p is _BAD for p in parts):
            return _BAD
        return parts[0] if len(parts) == 1 else model.AllOf(tuple(parts))

    def entry(self, key: str, key_node: yaml.Node, value: yaml.Node, scope: Scope) -> Any:
        if key in ("all", "any"):
            return self.combination(key, value, scope)
        if key == "not":
            inner = self.condition(value, scope)
            return _BAD if inner is _BAD else model.Not(inner)
        if key in ("any_item", "all_items"):
            if scope is Scope.ITEM:
                self.problem(key_node, f"{key} cannot be nested in any_item / all_items")
                return _BAD
            inner = self.condition(value, Scope.ITEM)
            quantifier = "any" if key == "any_item" else "all"
            return _BAD if inner is _BAD else model.Items(quantifier, inner)
        field = FIELDS[scope].get(key)
        if field is None:
            self.problem(key_node, _unknown_field(key, scope))
            return _BAD
        return self.field_condition(field, value)

    def combination(self, key: str, node: yaml.Node, scope: Scope) -> Any:
        items = self.sequence(node, f"`{key}` conditions")
        if items is None:
            return _BAD
        if not items:
            self.problem(node, f"`{key}` needs at least one condition")
            return _BAD
        parts = [self.condition(item, scope) for item in items]
        if any(p is _BAD for p in parts):
            return _BAD
        return model.AllOf(tuple(parts)) if key == "all" else model.AnyOf(tuple(parts))

    def field_condition(self, field: Field, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):  # `status: paid` is short for {eq: paid}
            return self.compare(field, "eq", node, node)
        if isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{field.name}: to test several values write {{in: [...]}}")
            return _BAD
        parts = [self.compare(field, op, k, v) for op, k, v in self.pairs(node, field.name)]
        if not node.value:
            self.problem(node, f"{field.name}: no operator given (e.g. {{eq: ...}})")
        if not parts or any(p is _BAD for p in parts):
            return _BAD
        return parts[0] if len(parts) == 1 else model.AllOf(tuple(parts))

    def compare(self, field: Field, op: str, op_node: yaml.Node, node: yaml.Node) -> Any:
        if op not in ALL_OPERATORS:
            self.problem(op_node, f"unknown operator {op!r}{_suggest(op, ALL_OPERATORS)}")
            return _BAD
        allowed = OPERATORS[field.kind]
        if op not in allowed:
            self.problem(
                op_node,
                f"operator {op!r} does not apply to {field.name} (a {field.kind}); "
                f"use one of: {', '.join(allowed)}",
            )
            return _BAD
        if op in LIST_OPERATORS:
            value = self.values(field, op, node)
        else:
            value = self.value(field, node)
            if op == "matches" and value is not _BAD:
                value = self.regex(node, value)
        if value is _BAD:
            return _BAD
        return model.Compare(field, op, value, _mark(op_node))

    def values(self, field: Field, op: str, node: yaml.Node) -> Any:
        items = self.sequence(node, f"values of {op}")
        if items is None:
            return _BAD
        if not items:
            self.problem(node, f"{op} needs at least one value")
            return _BAD
        values = [self.value(field, item) for item in items]
        return _BAD if any(v is _BAD for v in values) else tuple(values)

    def value(self, field: Field, node: yaml.Node) -> Any:
        raw = self.scalar(node)
        if raw is _BAD:
            got = self._kind(node)
            self.problem(node, f"{field.name}: expected a single {field.kind}, got {got}")
            return _BAD
        try:
            return _typed_value(field, raw)
        except ValueError as error:
            self.problem(node, f"{field.name}: {error}")
            return _BAD

    def regex(self, node: yaml.Node, pattern: str) -> Any:
        # The warehouse and the re-evaluation before each change both run RE2 (no look-around,
        # no backreferences, never backtracking): checked here with the same engine.
        import duckdb

        if self._re2 is None:
            self._re2 = duckdb.connect(":memory:")
        try:
            self._re2.execute("SELECT regexp_matches('', ?)", [pattern]).fetchone()
        except duckdb.Error as error:
            reason = str(error).split(":", 1)[-1].strip()
            self.problem(node, f"bad regex {_show(pattern)} for the warehouse (RE2): {reason}")
            return _BAD
        return pattern


_TIMESTAMP_HINT = "expected a timestamp like 2026-11-01T00:00:00Z"
_TYPE_NAMES: dict[Any, str] = {str: "a string", bool: "true or false", int: "an integer"}


def _unknown_status(value: Any) -> str:
    return f"unknown status {_show(value)} (known: {', '.join(ORDER_STATUSES)})"


def _unknown_field(key: str, scope: Scope) -> str:
    other = Scope.ITEM if scope is Scope.ORDER else Scope.ORDER
    if key in FIELDS[other]:
        where = (
            "put it under any_item or all_items"
            if other is Scope.ITEM
            else "item conditions cannot test order fields"
        )
        return f"unknown field {key!r} of {scope}: it is a column of {other} ({where})"
    known = [*FIELDS[scope], *(COMBINATORS if scope is Scope.ORDER else COMBINATORS[:3])]
    return f"unknown field {key!r} of {scope}{_suggest(key, known)}"


def _typed_value(field: Field, raw: Any) -> Any:
    """`raw` (from YAML) as the Python type the field compares with; ValueError if it cannot be."""
    if raw is None:
        raise ValueError(f"expected a {field.kind}, got null (missing values never match)")
    if field.kind is Kind.DURATION:
        if not isinstance(raw, str):
            raise ValueError(f"expected a duration like 30d or 12h, got {_show(raw)}")
        return parse_duration(raw)
    if field.kind is Kind.STATUS:
        if raw not in ORDER_STATUSES:
            raise ValueError(_unknown_status(raw))
        return raw
    if field.kind is Kind.TEXT:
        if not isinstance(raw, str):
            raise ValueError(f"expected a string, got {_show(raw)} (quote it: '{raw}')")
        return raw
    if field.kind is Kind.BOOL:
        if not isinstance(raw, bool):
            raise ValueError(f"expected true or false, got {_show(raw)}")
        return raw
    if field.kind is Kind.INT:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(f"expected an integer, got {_show(raw)}")
        if abs(raw) >= 2**63:
            raise ValueError(f"{raw} is out of range")
        return raw
    if field.kind is Kind.DECIMAL:
        return _decimal(raw, field.scale)
    return _timestamp(raw)


def _decimal(raw: Any, scale: int) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError(f"expected a number, got {_show(raw)}")
    try:
        number = Decimal(str(raw))  # str(): 99.99 stays 99.99, not its binary approximation
    except InvalidOperation:
        raise ValueError(f"expected a number, got {_show(raw)}") from None
    if not number.is_finite() or abs(number) >= _MAX_NUMBER:
        raise ValueError(f"{raw} is out of range")
    if number != number.quantize(Decimal(1).scaleb(-scale)):
        raise ValueError(f"{raw} has more than {scale} decimal places")
    return number


def _timestamp(raw: Any) -> datetime:
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, date):
        value = datetime.combine(raw, time())
    elif isinstance(raw, str):
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"{_TIMESTAMP_HINT}, got {raw!r}") from None
    else:
        raise ValueError(f"{_TIMESTAMP_HINT}, got {_show(raw)}")
    return as_utc(value)
