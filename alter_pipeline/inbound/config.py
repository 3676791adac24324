"""The inbound sources file (`inbound.yaml`, `$ALTER_INBOUND_FILE`): parsing and validation.

Like webhooks.yaml and rules.yaml it is walked as YAML nodes (`yaml.compose`), so every
problem names its line and column, and every problem of the file is reported at once::

    max_body_bytes: 1048576            # optional; larger requests are answered 413
    sources:
      - id: stripe
        path: /hooks/stripe
        kind: stripe                   # stripe | shopify | standard-webhooks | hmac-sha256
        secret_env: STRIPE_WEBHOOK_SECRET        # or a list, during a secret rotation
        tolerance: 5m                  # timestamped schemes only; default 5m
      - id: shop-backend
        path: /hooks/shop
        kind: hmac-sha256
        secret_env: SHOP_INBOUND_SECRET
        header: X-Signature            # hmac-sha256 only: where the signature is
        encoding: hex                  # hex (default) or base64
        prefix: "sha256="              # optional text before the signature
        id_header: X-Event-Id          # optional; else the body's `id`, else its SHA-256

The file holds names of environment variables, never a secret.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alter_pipeline.config import ConfigError
from alter_pipeline.webhooks.signing import check_secret

KINDS = ("stripe", "shopify", "standard-webhooks", "hmac-sha256")
TIMESTAMPED = ("stripe", "standard-webhooks")
ENCODINGS = ("hex", "base64")
SOURCE_KEYS = (
    "id",
    "path",
    "kind",
    "secret_env",
    "tolerance",
    "header",
    "encoding",
    "prefix",
    "id_header",
    "storefront",
)
TOP_KEYS = ("sources", "max_body_bytes")
DEFAULT_TOLERANCE_S = 300
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
SOURCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,127}")
URL_PATH = re.compile(r"/[A-Za-z0-9._~/-]*")
STOREFRONT = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # storefronts.NAME, without the import
_DURATION = re.compile(r"(\d+)\s*([smh]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


class InboundConfigError(ConfigError):
    """The inbound file is missing or invalid; one `FILE:LINE:COL: message` line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Source:
    id: str
    path: str
    kind: str
    secret_envs: tuple[str, ...]
    tolerance_s: int = DEFAULT_TOLERANCE_S
    header: str | None = None  # hmac-sha256: the signature header
    encoding: str = "hex"
    prefix: str = ""
    id_header: str | None = None
    storefront: str | None = None  # with storefronts.yaml: whose inbox the events go to

    def secrets(self, env: dict[str, str] | None = None) -> tuple[str, ...]:
        """The secrets, newest first as listed; a missing one names its variable only."""
        env = dict(os.environ) if env is None else env
        values = []
        for name in self.secret_envs:
            value = env.get(name, "").strip()
            what = f"inbound source {self.id}: environment variable {name}"
            if not value:
                raise ConfigError(f"{what} is unset")
            if self.kind == "standard-webhooks":
                check_secret(value, what)  # whsec_ + base64 of 24+ bytes, as the spec says
            values.append(value)
        return tuple(values)


@dataclass(frozen=True)
class InboundConfig:
    sources: tuple[Source, ...]
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    path: Path | None = None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.sources)

    def source(self, source_id: str) -> Source:
        found = next((s for s in self.sources if s.id == source_id), None)
        if found is None:
            known = ", ".join(self.ids) or "none"
            raise ConfigError(f"no inbound source {source_id!r} (known: {known})")
        return found


def inbound_file() -> Path:
    return Path(os.environ.get("ALTER_INBOUND_FILE") or "inbound.yaml")


def load_inbound(path: Path) -> InboundConfig:
    try:
        text = Path(path).read_text("utf-8")
    except OSError as error:
        raise InboundConfigError([f"{path}: {error.strerror or error}"]) from None
    return parse_inbound(text, source=str(path), path=Path(path))


def configured_inbound(path: Path | None = None) -> InboundConfig | None:
    """The sources of `path` ($ALTER_INBOUND_FILE by default), or None if there is no file."""
    path = path or inbound_file()
    return load_inbound(path) if path.is_file() else None


def parse_inbound(
    text: str, source: str = "inbound.yaml", path: Path | None = None
) -> InboundConfig:
    parser = _Parser(source)
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{mark.line + 1}:{mark.column + 1}" if mark else "1:1"
        reason = getattr(error, "problem", None) or "not valid YAML"
        raise InboundConfigError([f"{source}:{where}: {reason}"]) from None
    config = parser.document(root)
    if parser.problems or config is None:
        raise InboundConfigError(parser.problems or [f"{source}:1:1: no `sources:` list"])
    return InboundConfig(config.sources, config.max_body_bytes, path)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, node: yaml.Node | None, message: str) -> None:
        mark = node.start_mark if node is not None else None
        where = f"{mark.line + 1}:{mark.column + 1}" if mark else "1:1"
        self.problems.append(f"{self.source}:{where}: {message}")

    def mapping(self, node: yaml.Node | None, what: str, keys: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"expected {what} (a mapping)")
            return {}
        entries: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key not in keys:
                self.problem(
                    key_node, f"unknown key {key!r} in {what} (allowed: {', '.join(keys)})"
                )
            elif key in entries:
                self.problem(key_node, f"duplicate key {key!r} in {what}")
            else:
                entries[key] = value_node
        return entries

    def scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return None
        return yaml.SafeLoader("").construct_object(node)

    def text(self, node: yaml.Node, what: str, pattern: re.Pattern[str]) -> str | None:
        value = node.value if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, str) or not pattern.fullmatch(value):
            self.problem(node, f"{what}: expected {_EXPECTED[pattern.pattern]}")
            return None
        return value

    def document(self, root: yaml.Node | None) -> InboundConfig | None:
        if root is None:
            self.problem(None, "the file is empty: expected a `sources:` list")
            return None
        top = self.mapping(root, "the file", TOP_KEYS)
        limit = DEFAULT_MAX_BODY_BYTES
        if "max_body_bytes" in top:
            value = self.scalar(top["max_body_bytes"])
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                self.problem(top["max_body_bytes"], "max_body_bytes: expected a positive integer")
            else:
                limit = value
        if "sources" not in top:
            if isinstance(root, yaml.MappingNode):
                self.problem(root, "missing `sources:` (a list of sources)")
            return None
        node = top["sources"]
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.problem(node, "sources: expected a non-empty list")
            return None
        sources = [self.source_entry(item) for item in node.value]
        found = [s for s in sources if s is not None]
        self.unique(node, found)
        return InboundConfig(tuple(found), limit)

    def unique(self, node: yaml.SequenceNode, sources: list[Source]) -> None:
        for attribute in ("id", "path"):
            seen: set[str] = set()
            for item, source in zip(node.value, sources, strict=False):
                value = getattr(source, attribute)
                if value in seen:
                    self.problem(item, f"{attribute} {value!r} appears twice")
                seen.add(value)

    def source_entry(self, node: yaml.Node) -> Source | None:
        before = len(self.problems)
        entries = self.mapping(node, "a source", SOURCE_KEYS)
        for key in ("id", "path", "kind", "secret_env"):
            if key not in entries and isinstance(node, yaml.MappingNode):
                self.problem(node, f"source is missing `{key}`")
        if len(self.problems) > before:
            return None
        source_id = self.text(entries["id"], "id", SOURCE_ID)
        url_path = self.text(entries["path"], "path", URL_PATH)
        kind = self.scalar(entries["kind"])
        if kind not in KINDS:
            self.problem(entries["kind"], f"kind: expected one of {', '.join(KINDS)}")
        secret_envs = self.env_names(entries["secret_env"])
        options = self.options(entries, kind)
        if len(self.problems) > before:
            return None
        assert source_id and url_path and secret_envs
        return Source(id=source_id, path=url_path, kind=kind, secret_envs=secret_envs, **options)

    def env_names(self, node: yaml.Node) -> tuple[str, ...]:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        names = [self.text(item, "secret_env", ENV_NAME) for item in items]
        if not items:
            self.problem(node, "secret_env: name at least one environment variable")
        return tuple(n for n in names if n)

    def options(self, entries: dict[str, Any], kind: Any) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if "tolerance" in entries:
            if kind not in TIMESTAMPED:
                self.problem(entries["tolerance"], f"tolerance: a {kind} request has no timestamp")
            options["tolerance_s"] = self.duration(entries["tolerance"])
        hmac_only = ("header", "encoding", "prefix", "id_header")
        for key in hmac_only:
            if key in entries and kind != "hmac-sha256":
                self.problem(entries[key], f"{key}: only for kind hmac-sha256")
        if kind == "hmac-sha256":
            if "header" not in entries:
                self.problem(None if not entries else entries["kind"], "hmac-sha256 needs `header`")
            else:
                options["header"] = self.text(entries["header"], "header", HEADER_NAME)
            if "id_header" in entries:
                options["id_header"] = self.text(entries["id_header"], "id_header", HEADER_NAME)
            if "encoding" in entries:
                encoding = self.scalar(entries["encoding"])
                if encoding not in ENCODINGS:
                    self.problem(entries["encoding"], "encoding: expected hex or base64")
                options["encoding"] = encoding
            if "prefix" in entries:
                prefix = self.scalar(entries["prefix"])
                if not isinstance(prefix, str):
                    self.problem(entries["prefix"], "prefix: expected a string, e.g. 'sha256='")
                options["prefix"] = prefix
        if "storefront" in entries:
            options["storefront"] = self.text(entries["storefront"], "storefront", STOREFRONT)
        return options

    def duration(self, node: yaml.Node) -> int:
        value = self.scalar(node)
        text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
        match = _DURATION.fullmatch(text.strip())
        if not match or int(match[1]) == 0:
            self.problem(node, "tolerance: expected seconds or a duration like 300s, 5m or 1h")
            return DEFAULT_TOLERANCE_S
        return int(match[1]) * _UNITS[match[2]]


_EXPECTED = {
    SOURCE_ID.pattern: "letters, digits, _ . - (at most 64)",
    URL_PATH.pattern: "a URL path starting with /, e.g. /hooks/stripe",
    ENV_NAME.pattern: "the NAME of an environment variable (never the secret itself)",
    HEADER_NAME.pattern: "an HTTP header name, e.g. X-Signature",
    STOREFRONT.pattern: "a storefront name of storefronts.yaml",
}
