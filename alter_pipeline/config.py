"""Settings from environment variables, optionally seeded by a `.env` file in the working dir.

Plain Python, no Dagster: the CLI, the client and the Dagster resources all read settings here.
Real environment variables win over `.env` entries.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from alter_pipeline.contract import DEFAULT_BASE_URL
from alter_pipeline.instance import resolve_dagster_home


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def load_dotenv(path: Path | None = None) -> None:
    """Copy `KEY=value` lines of `.env` into os.environ unless already set there."""
    path = path or Path.cwd() / ".env"
    if not path.is_file():
        return
    for number, raw in enumerate(path.read_text("utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{path}:{number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        os.environ.setdefault(name.strip(), value)


ENV_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def env_name_problem(value: str) -> str | None:
    """Why `value`, given where the NAME of an environment variable belongs (`api_key_env`,
    `secret_env`, ...), is not one; None if it is. The value is never repeated: a key or secret
    pasted there must not reach an error message, a log or the Dagster run database.

    A name is letters, digits and '_'; one that mixes lower case with digits is taken for a
    pasted key (`sk_live_4eC39Hq...`): variable names are upper case by convention, and
    lower-case ones (`shop_secret`) rarely carry digits.
    """
    looks_like_name = ENV_VARIABLE_NAME.fullmatch(value) is not None
    mixed_with_digits = value != value.upper() and any(c.isdigit() for c in value)
    if looks_like_name and not mixed_with_digits and not value.startswith("whsec_"):
        return None
    return (
        "looks like a secret, not a variable name: give the NAME of an environment variable "
        "that holds it (e.g. SHOP_WEBHOOK_SECRET); the value is not shown"
    )


def validate_base_url(url: str, variable: str = "ALTER_API_BASE_URL") -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{variable} must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


def data_location(data_dir: str, cache_dir: str | None) -> dict[str, Any]:
    """A local data directory, or an object-store URL plus the local mirror that stages it."""
    if "://" not in data_dir:
        return {"data_dir": _directory(data_dir, "ALTER_DATA_DIR"), "lake_url": None}
    scheme = data_dir.split("://", 1)[0]
    if scheme == "file":
        local = _directory(data_dir[len("file://") :], "ALTER_DATA_DIR")
        return {"data_dir": local, "lake_url": None}
    if not data_dir.split("://", 1)[1].strip("/"):
        raise ConfigError(f"ALTER_DATA_DIR must name a bucket, got {data_dir!r}")
    cache = _directory(cache_dir or ".alter-cache", "ALTER_CACHE_DIR")
    return {"data_dir": cache, "lake_url": data_dir.rstrip("/")}


def _directory(value: str, variable: str) -> Path:
    """`value` as an absolute path that is a directory or does not exist yet."""
    path = Path(value).absolute()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{variable} names {path}, which is a file, not a directory")
    return path


@dataclass(frozen=True)
class Settings:
    base_url: str = DEFAULT_BASE_URL
    api_key: str = field(default="", repr=False)
    api_token: str = field(default="", repr=False)
    data_dir: Path = Path("data")
    # With ALTER_DATA_DIR=s3://bucket/prefix (any pyarrow filesystem URL) the lake lives there
    # and data_dir is the local working directory mirroring it ($ALTER_CACHE_DIR).
    lake_url: str | None = None
    dagster_home: Path = Path("dagster_home")
    rules_file: Path = Path("rules.yaml")
    webhooks_file: Path = Path("webhooks.yaml")
    # Several storefronts (alter_pipeline/storefronts.py) when this file exists.
    storefronts_file: Path = Path("storefronts.yaml")
    # Which of them the rules and webhooks commands work on (ALTER_STOREFRONT).
    storefront: str | None = None

    @classmethod
    def from_env(cls, *, dotenv: bool = True) -> Settings:
        if dotenv:
            load_dotenv()
        env = os.environ
        return cls(
            base_url=validate_base_url(env.get("ALTER_API_BASE_URL") or DEFAULT_BASE_URL),
            api_key=env.get("ALTER_API_KEY", ""),
            api_token=env.get("ALTER_API_TOKEN", ""),
            **data_location(env.get("ALTER_DATA_DIR") or "data", env.get("ALTER_CACHE_DIR")),
            dagster_home=resolve_dagster_home(env),
            rules_file=Path(env.get("ALTER_RULES_FILE") or "rules.yaml"),
            webhooks_file=Path(env.get("ALTER_WEBHOOKS_FILE") or "webhooks.yaml"),
            storefronts_file=Path(env.get("ALTER_STOREFRONTS_FILE") or "storefronts.yaml"),
            storefront=env.get("ALTER_STOREFRONT") or None,
        )

    def require_credentials(self) -> None:
        for variable, value in (
            ("ALTER_API_KEY", self.api_key),
            ("ALTER_API_TOKEN", self.api_token),
        ):
            if not value.strip():
                raise ConfigError(f"{variable} is empty: set it in the environment or in .env")


def retention_days(variable: str, default: float) -> float:
    """Days of a retention setting (`ALTER_*_RETENTION_DAYS`), or `default` when unset."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not days >= 1:  # also refuses nan
        raise ConfigError(f"{variable}={text!r}: must be a number of days, at least 1")
    return days
