"""Several storefronts in one deployment: `storefronts.yaml` and where each one's lake lives.

The file lists, per storefront, the name that becomes its Dagster partition key, the API's base
URL and the *names* of the environment variables that hold its key and token (the secrets
themselves never sit in a file)::

    storefronts:
      - name: berlin
        base_url: https://alterproduct.com/public-api/v1   # optional
        api_key_env: BERLIN_ALTER_API_KEY
        api_token_env: BERLIN_ALTER_API_TOKEN

Without the file the deployment has one storefront, configured by ALTER_API_KEY/TOKEN, whose
lake is the data directory itself. With it, each storefront's lake is a directory of its own,
named after the id the API gives it (`storefrontId` of GET /auth/check), beside a link from
its name::

    <data dir>/storefront_id=12/lake -> snapshots/<id>    berlin's lake (and outbox, ledger)
    <data dir>/storefronts/berlin -> ../storefront_id=12

so one DuckDB query over `<data dir>/storefront_id=*/lake/...` spans every storefront, and a
storefront whose key is re-pointed to another storefront never mixes the two in one lake.
Plain Python: the Dagster code, the CLI and the sensors all resolve storefronts here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from alter_pipeline import yaml_limits
from alter_pipeline.config import ConfigError, env_name_problem, validate_base_url
from alter_pipeline.contract import DEFAULT_BASE_URL

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KEYS = ("name", "base_url", "api_key_env", "api_token_env")
LINKS_DIR = "storefronts"
ROOT_PREFIX = "storefront_id="


class StorefrontsError(ConfigError):
    """storefronts.yaml is invalid; the message names the file, the entry and the field."""


@dataclass(frozen=True)
class Storefront:
    name: str
    api_key_env: str
    api_token_env: str
    base_url: str = DEFAULT_BASE_URL

    def credentials(self, env: Mapping[str, str] | None = None) -> tuple[str, str]:
        """Key and token from the environment; a missing one names its variable, not its value."""
        env = os.environ if env is None else env
        values = []
        for variable in (self.api_key_env, self.api_token_env):
            value = env.get(variable, "").strip()
            if not value:
                raise ConfigError(
                    f"storefront {self.name}: environment variable {variable} is empty or unset"
                )
            values.append(value)
        return values[0], values[1]


@dataclass(frozen=True)
class Storefronts:
    entries: tuple[Storefront, ...]
    source: str = "storefronts.yaml"

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.entries]

    def get(self, name: str) -> Storefront:
        found = next((s for s in self.entries if s.name == name), None)
        if found is None:
            raise StorefrontsError(
                f"{self.source}: no storefront named {name!r} (known: {', '.join(self.names)})"
            )
        return found


def load_storefronts(path: Path) -> Storefronts:
    try:
        text = yaml_limits.read_limited(path).decode("utf-8")
        yaml_limits.check_limits(text)
        data = yaml.safe_load(text)
    except yaml_limits.YamlLimitError as breach:
        raise StorefrontsError(f"{path}:{breach}") from None
    except yaml.YAMLError as error:
        raise StorefrontsError(f"{path}: not valid YAML: {error}") from None
    return parse_storefronts(data, source=str(path))


def parse_storefronts(data: object, source: str = "storefronts.yaml") -> Storefronts:
    if not isinstance(data, dict) or not isinstance(data.get("storefronts"), list):
        raise StorefrontsError(f"{source}: expected a top-level `storefronts:` list")
    entries = [
        _entry(raw, f"{source}: storefronts[{i}]") for i, raw in enumerate(data["storefronts"])
    ]
    if not entries:
        raise StorefrontsError(f"{source}: the `storefronts:` list is empty")
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise StorefrontsError(f"{source}: storefront name {entry.name!r} appears twice")
        seen.add(entry.name)
    return Storefronts(entries=tuple(entries), source=source)


def _entry(raw: object, where: str) -> Storefront:
    if not isinstance(raw, dict):
        raise StorefrontsError(f"{where}: expected a mapping with {', '.join(KEYS)}")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise StorefrontsError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(KEYS)})")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise StorefrontsError(
            f"{where}.name: {name!r} is not a valid name (lower-case letters, digits, '_' or "
            "'-', at most 64; it becomes the Dagster partition key)"
        )
    where = f"{where} ({name})"
    for key in ("api_key_env", "api_token_env"):
        value = raw.get(key)
        if not isinstance(value, str):
            raise StorefrontsError(
                f"{where}.{key}: expected the NAME of an environment variable, got "
                f"{'nothing' if value is None else 'something else'}"
            )
        problem = env_name_problem(value)
        if problem:
            raise StorefrontsError(f"{where}.{key}: {problem}")
    base_url = raw.get("base_url") or DEFAULT_BASE_URL
    if not isinstance(base_url, str):
        raise StorefrontsError(f"{where}.base_url: expected an http(s) URL")
    try:
        base_url = validate_base_url(base_url, variable=f"{where}.base_url")
    except ConfigError as error:
        raise StorefrontsError(str(error)) from None
    return Storefront(
        name=name,
        api_key_env=raw["api_key_env"],
        api_token_env=raw["api_token_env"],
        base_url=base_url,
    )


def configured(path: Path) -> Storefronts | None:
    """The storefronts of `path`, or None (the single-storefront deployment) if it is absent."""
    return load_storefronts(path) if path.is_file() else None


# ---- where each storefront's lake lives --------------------------------------------------------


def lake_root(data_dir: Path, storefront_id: int) -> Path:
    return data_dir / f"{ROOT_PREFIX}{storefront_id}"


def link_name(data_dir: Path, name: str, storefront_id: int) -> Path:
    """Point `storefronts/<name>` at the storefront's lake root (atomically: rename(2))."""
    links = data_dir / LINKS_DIR
    links.mkdir(parents=True, exist_ok=True)
    link = links / name
    target = Path("..") / lake_root(Path(), storefront_id)
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return link
    staged = links / f".{name}.{os.getpid()}"
    staged.unlink(missing_ok=True)
    os.symlink(target, staged)
    os.replace(staged, link)
    return link


def root_of(data_dir: Path, name: str) -> Path | None:
    """The lake root of storefront `name`, None before its first sync linked it."""
    link = data_dir / LINKS_DIR / name
    return link.resolve() if link.is_symlink() else None


def storefront_roots(data_dir: Path) -> list[Path]:
    """Every lake root under `data_dir`: the single-storefront lake and each storefront's."""
    roots = [data_dir] if (data_dir / "lake").is_symlink() else []
    if data_dir.is_dir():
        roots += sorted(
            p for p in data_dir.iterdir() if p.name.startswith(ROOT_PREFIX) and p.is_dir()
        )
    return roots
