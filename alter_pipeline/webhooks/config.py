"""The subscriptions file (`webhooks.yaml`): parsing and validation with line:column marks.

We walk the node tree of `yaml.compose` rather than the plain objects of `yaml.safe_load`,
so every problem can point at the exact line and column it comes from, and we collect every
problem before failing: fixing a file one error per run is tedious.

    endpoints:
      - id: shop-backend
        url: http://127.0.0.1:9000/hooks/alter
        events: ["order.*"]
        secret_env: SHOP_WEBHOOK_SECRET   # holds a whsec_... secret
        enabled: true                     # optional, default true
        timeout_s: 15                     # optional, total time per attempt, default 15
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from alter_pipeline import yaml_limits
from alter_pipeline.config import ConfigError, env_name_problem
from alter_pipeline.events.schema import EVENT_TYPES
from alter_pipeline.storefronts import NAME as STOREFRONT_NAME
from alter_pipeline.webhooks.signing import secret_from_env

DEFAULT_TIMEOUT_S = 15.0
MAX_TIMEOUT_S = 60.0
ENDPOINT_KEYS = ("id", "url", "events", "secret_env", "enabled", "timeout_s", "storefront")
REQUIRED_KEYS = ("id", "url", "events", "secret_env")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_PATTERN = re.compile(r"[a-z*][a-z_.*]*")


@dataclass(frozen=True)
class Problem:
    """One validation problem, printed as `file:line:col: path: message` (1-based marks)."""

    source: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.source}:{self.line}:{self.column}: {where}{self.message}"


class SubscriptionsError(ConfigError):
    """The subscriptions file is missing or invalid; `problems` lists every issue found."""

    def __init__(self, problems: list[Problem] | str) -> None:
        self.problems = [] if isinstance(problems, str) else problems
        text = problems if isinstance(problems, str) else "\n".join(map(str, problems))
        super().__init__(text)


# Cloud metadata services answer on these names and on link-local addresses: a webhook sent
# there would post event payloads to (and expose answers of) the host's credential service.
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})
_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address(a) for a in ("100.100.100.200", "fd00:ec2::254")}
)


def _forbidden_host(hostname: str) -> str | None:
    """Why deliveries may not go to `hostname` (a link-local or cloud-metadata address)."""
    name = hostname.lower().rstrip(".")
    if name in _METADATA_HOSTS:
        return f"{hostname} is a cloud metadata service, not a webhook endpoint"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None  # a DNS name: resolved when delivering
    if address.is_link_local or address in _METADATA_ADDRESSES:
        return (
            f"{hostname} is a link-local or cloud metadata address (169.254.0.0/16, fe80::/10), "
            "not a webhook endpoint"
        )
    return None


def event_pattern(pattern: str) -> re.Pattern[str]:
    """`order.*` -> a regex; `*` is the only wildcard and matches any run of characters."""
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern))


def matching_types(pattern: str) -> tuple[str, ...]:
    regex = event_pattern(pattern)
    return tuple(t for t in EVENT_TYPES if regex.fullmatch(t))


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    events: tuple[str, ...]
    secret_env: str
    enabled: bool = True
    timeout_s: float = DEFAULT_TIMEOUT_S
    # Names of storefronts.yaml whose events this endpoint gets; empty: every storefront's.
    storefronts: tuple[str, ...] = ()
    line: int = 0  # where the endpoint starts in the file, for messages

    @functools.cached_property
    def event_types(self) -> frozenset[str]:
        """The concrete event types the patterns expand to (validated to be non-empty)."""
        return frozenset(t for p in self.events for t in matching_types(p))

    def matches(self, event_type: str) -> bool:
        return event_type in self.event_types

    def secret(self) -> str:
        """The `whsec_` secret from the environment, checked for shape, never echoed."""
        return secret_from_env(self.secret_env, owner=f"endpoint {self.id}")


@dataclass(frozen=True)
class Subscriptions:
    endpoints: tuple[Endpoint, ...]
    source: str = "webhooks.yaml"

    def get(self, endpoint_id: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.id == endpoint_id), None)

    def active(self) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.enabled)

    def scoped(self, applies: Callable[[tuple[str, ...]], bool]) -> Subscriptions:
        """The endpoints whose `storefront` scope `applies` to the run's storefront."""
        kept = tuple(e for e in self.endpoints if applies(e.storefronts))
        return dataclasses.replace(self, endpoints=kept)


def load_subscriptions(path: Path | str) -> Subscriptions:
    path = Path(path)
    if not path.is_file():
        raise SubscriptionsError(
            f"webhooks file not found: {path} (set ALTER_WEBHOOKS_FILE or create it)"
        )
    try:
        data = yaml_limits.read_limited(path)
    except yaml_limits.YamlLimitError as breach:
        problem = Problem(str(path), breach.line, breach.column, "", breach.message)
        raise SubscriptionsError([problem]) from None
    return parse_subscriptions(data.decode("utf-8"), source=str(path))


def parse_subscriptions(text: str, source: str = "webhooks.yaml") -> Subscriptions:
    parser = _Parser(source)
    endpoints = parser.parse(text)
    if parser.problems:
        raise SubscriptionsError(sorted(parser.problems, key=lambda p: (p.line, p.column)))
    return Subscriptions(endpoints=tuple(endpoints), source=source)


class _Parser:
    """Collects problems while turning the composed node tree into `Endpoint`s."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self._scalars = yaml.constructor.SafeConstructor()

    def problem(self, node: yaml.Node | None, path: str, message: str) -> None:
        mark = node.start_mark if node is not None else None
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        self.problems.append(Problem(self.source, line, column, path, message))

    def parse(self, text: str) -> list[Endpoint]:
        try:
            root = yaml_limits.compose(text)
        except yaml_limits.YamlLimitError as breach:
            self.problems.append(
                Problem(self.source, breach.line, breach.column, "", breach.message)
            )
            return []
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            reason = error.problem or error.context or "invalid YAML"
            self.problems.append(Problem(self.source, line, column, "", f"YAML: {reason}"))
            return []
        except yaml.YAMLError as error:
            self.problems.append(Problem(self.source, 1, 1, "", f"YAML: {error}"))
            return []
        if root is None or not isinstance(root, yaml.MappingNode):
            self.problem(root, "", "expected a mapping with an `endpoints` list")
            return []
        fields = self.mapping(root, "", allowed=("endpoints",))
        endpoints_node = fields.get("endpoints")
        if endpoints_node is None:
            self.problem(root, "", "missing `endpoints`")
            return []
        if _is_null(endpoints_node):
            return []
        if not isinstance(endpoints_node, yaml.SequenceNode):
            self.problem(endpoints_node, "endpoints", "expected a list of endpoints")
            return []
        endpoints = [
            self.endpoint(n, f"endpoints[{i}]") for i, n in enumerate(endpoints_node.value)
        ]
        self.check_unique_ids(endpoints_node.value)
        return [e for e in endpoints if e is not None]

    def mapping(
        self, node: yaml.MappingNode, path: str, allowed: Iterable[str]
    ) -> dict[str, yaml.Node]:
        allowed = tuple(allowed)
        fields: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            where = f"{path}.{key}" if path else str(key)
            if key not in allowed:
                self.problem(
                    key_node, where, f"unknown key (expected one of: {', '.join(allowed)})"
                )
            elif key in fields:
                self.problem(key_node, where, "duplicate key")
            else:
                fields[key] = value_node
        return fields

    def scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return node  # callers report the wrong shape
        return self._scalars.construct_object(node, deep=True)

    def endpoint(self, node: yaml.Node, path: str) -> Endpoint | None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, "expected a mapping with id, url, events and secret_env")
            return None
        fields = self.mapping(node, path, ENDPOINT_KEYS)
        before = len(self.problems)
        for key in REQUIRED_KEYS:
            if key not in fields:
                self.problem(node, path, f"missing `{key}`")
        values: dict[str, Any] = {
            "id": self.endpoint_id(fields.get("id"), f"{path}.id"),
            "url": self.url(fields.get("url"), f"{path}.url"),
            "events": self.events(fields.get("events"), f"{path}.events"),
            "secret_env": self.secret_env(fields.get("secret_env"), f"{path}.secret_env"),
            "enabled": self.enabled(fields.get("enabled"), f"{path}.enabled"),
            "timeout_s": self.timeout(fields.get("timeout_s"), f"{path}.timeout_s"),
        }
        if "storefront" in fields:
            values["storefronts"] = self.storefronts(fields["storefront"], f"{path}.storefront")
        if len(self.problems) > before:
            return None
        return Endpoint(**values, line=node.start_mark.line + 1)

    def string(self, node: yaml.Node | None, path: str) -> str | None:
        if node is None:
            return None
        value = self.scalar(node)
        if not isinstance(value, str) or not value.strip():
            self.problem(node, path, "expected a non-empty string")
            return None
        return value.strip()

    def storefronts(self, node: yaml.Node, path: str) -> tuple[str, ...] | None:
        """`storefront: berlin` or `storefront: [berlin, paris]` (names of storefronts.yaml)."""
        nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
        names = [self.scalar(n) for n in nodes]
        if not names or not all(isinstance(n, str) and STOREFRONT_NAME.fullmatch(n) for n in names):
            self.problem(node, path, "expected a storefront name of storefronts.yaml, or a list")
            return None
        return tuple(names)

    def endpoint_id(self, node: yaml.Node | None, path: str) -> str | None:
        value = self.string(node, path)
        if value is not None and not _ID.fullmatch(value):
            self.problem(node, path, "use letters, digits, '.', '_' or '-' (at most 64)")
        return value

    def url(self, node: yaml.Node | None, path: str) -> str | None:
        value = self.string(node, path)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            self.problem(node, path, "only http(s) URLs are allowed")
        elif not parts.hostname:
            self.problem(node, path, "the URL has no host")
        elif parts.username or parts.password:
            # Credentials in URLs end up in logs; the signature authenticates deliveries.
            self.problem(node, path, "credentials in the URL are not allowed")
        elif reason := _forbidden_host(parts.hostname):
            self.problem(node, path, reason)
        return value

    def events(self, node: yaml.Node | None, path: str) -> tuple[str, ...]:
        if node is None:
            return ()
        if isinstance(node, yaml.ScalarNode):
            items = [node]  # `events: "*"` is a natural shorthand for a one-item list
        elif isinstance(node, yaml.SequenceNode) and node.value:
            items = node.value
        else:
            self.problem(node, path, "expected a non-empty list of event types")
            return ()
        patterns = []
        for index, item in enumerate(items):
            pattern = self.string(item, f"{path}[{index}]")
            if pattern is None:
                continue
            if not _PATTERN.fullmatch(pattern) or not matching_types(pattern):
                self.problem(
                    item,
                    f"{path}[{index}]",
                    f"unknown event type {pattern!r} (known: {', '.join(EVENT_TYPES)};"
                    " wildcards like 'order.*' or '*')",
                )
            patterns.append(pattern)
        return tuple(patterns)

    def secret_env(self, node: yaml.Node | None, path: str) -> str | None:
        value = self.string(node, path)
        if value is None:
            return None
        problem = env_name_problem(value)
        if problem:  # perhaps the secret itself, pasted: never repeated
            self.problem(node, path, problem)
            return None
        return value

    def enabled(self, node: yaml.Node | None, path: str) -> bool:
        if node is None:
            return True
        value = self.scalar(node)
        if not isinstance(value, bool):
            self.problem(node, path, "expected true or false")
            return True
        return value

    def timeout(self, node: yaml.Node | None, path: str) -> float:
        if node is None:
            return DEFAULT_TIMEOUT_S
        value = self.scalar(node)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(node, path, "expected a number of seconds")
            return DEFAULT_TIMEOUT_S
        if not 0 < value <= MAX_TIMEOUT_S:
            self.problem(node, path, f"must be above 0 and at most {MAX_TIMEOUT_S:g} seconds")
        return float(value)

    def check_unique_ids(self, nodes: list[yaml.Node]) -> None:
        # Checked on the nodes, so an endpoint with other problems still claims its id.
        seen: dict[str, int] = {}
        for index, node in enumerate(nodes):
            if not isinstance(node, yaml.MappingNode):
                continue
            id_node = next((v for k, v in node.value if getattr(k, "value", None) == "id"), None)
            value = self.scalar(id_node) if id_node is not None else None
            if not isinstance(value, str):
                continue
            key = value.strip()
            if key in seen:
                where = f"endpoints[{index}].id"
                self.problem(id_node, where, f"duplicate id {key!r} (also endpoints[{seen[key]}])")
            else:
                seen[key] = index


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"
