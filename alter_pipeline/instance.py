"""Which Dagster instance (DAGSTER_HOME) the project's entry points use.

Dagster reads only `$DAGSTER_HOME/dagster.yaml`, so each storage backend gets its own home:
`dagster_home` (SQLite, the embedded default) and `dagster_home/postgres`, whose dagster.yaml
links to `dagster_home/dagster.postgres.yaml`. One variable, ALTER_DAGSTER_STORAGE, picks
between them; an explicit DAGSTER_HOME always wins. Plain Python, no Dagster import.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

STORAGE_VARIABLE = "ALTER_DAGSTER_STORAGE"
DEFAULT_STORAGE = "sqlite"
# Relative to the working directory, like every other default path of the settings.
STORAGE_HOMES: dict[str, Path] = {
    "sqlite": Path("dagster_home"),
    "postgres": Path("dagster_home") / "postgres",
}


def storage_backend(env: Mapping[str, str]) -> str:
    """The validated value of ALTER_DAGSTER_STORAGE (default `sqlite`)."""
    # Exact, lower-case values: the Makefile matches the same words to pick DAGSTER_HOME.
    value = (env.get(STORAGE_VARIABLE) or DEFAULT_STORAGE).strip()
    if value not in STORAGE_HOMES:
        # Imported here: config.py imports this module, so a top-level import would be circular.
        from alter_pipeline.config import ConfigError

        allowed = ", ".join(sorted(STORAGE_HOMES))
        raise ConfigError(f"{STORAGE_VARIABLE} must be one of {allowed}, got {value!r}")
    return value


def resolve_dagster_home(env: Mapping[str, str]) -> Path:
    """DAGSTER_HOME if set, else the home of the ALTER_DAGSTER_STORAGE backend; absolute.

    The backend is validated even when DAGSTER_HOME is set, so a typo never goes unnoticed.
    """
    backend = storage_backend(env)
    return Path(env.get("DAGSTER_HOME") or STORAGE_HOMES[backend]).absolute()
