"""The DuckDB warehouse: a small database file holding only views over the lake's Parquet files.

Views read `lake/<table>/**/*.parquet` of every storefront's lake root (see
alter_pipeline/storefronts.py; one root, the data directory, without storefronts.yaml); `lake`
is a symlink swapped atomically by each sync, so the view definitions never change when data
changes, only when a table or a storefront appears. A sync therefore needs to write
`warehouse.duckdb` only when the set of tables changes, and skips that (with a warning) if an
analyst holds the file open, instead of failing. The dashboard models dbt builds
(alter_pipeline/analytics.py) are views of the same kind over `analytics/<model>.parquet`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from alter_pipeline.lake.locate import published_lakes
from alter_pipeline.lake.snapshot import Lake
from alter_pipeline.storefronts import ROOT_PREFIX, storefront_roots

if TYPE_CHECKING:  # pyarrow imports pandas when a DataFrame is asked for, not before
    import pandas as pd

log = logging.getLogger(__name__)

WAREHOUSE_FILE = "warehouse.duckdb"
# dbt's dashboard models: one Parquet file each (alter_pipeline/analytics.py)
ANALYTICS_DIR = "analytics"
# Tables whose files sit in hive partitions (e.g. order_events/date=2026-11-26/part-*.parquet).
PARTITIONED_TABLES = frozenset({"order_events", "status_transitions"})


@dataclass(frozen=True)
class ViewSync:
    created: list[str]
    skipped_reason: str | None = None


def view_sql(data_dir: Path, table: str) -> str:
    patterns = ", ".join(f"'{_quote(p)}'" for p in table_patterns(data_dir, table))
    partitioned = "true" if table in PARTITIONED_TABLES else "false"
    return (
        f'CREATE OR REPLACE VIEW "{table}" AS SELECT * FROM read_parquet('
        f"[{patterns}], hive_partitioning = {partitioned}, union_by_name = true)"
    )


def table_patterns(data_dir: Path, table: str) -> list[str]:
    """The Parquet globs of `table` in every lake root that has it."""
    return [
        (root.absolute() / "lake" / table / "**" / "*.parquet").as_posix()
        for root in storefront_roots(data_dir)
        if _has_files(root / "lake" / table)
    ]


def analytics_models(data_dir: Path) -> dict[str, Path]:
    """The dashboard models dbt has written, by name."""
    folder = data_dir / ANALYTICS_DIR
    return {p.stem: p for p in sorted(folder.glob("*.parquet"))} if folder.is_dir() else {}


def view_statements(data_dir: Path) -> dict[str, str]:
    """The warehouse's views by name: every lake table, then every dashboard model (a model
    wins over a lake table of the same name, which older versions wrote into the lake)."""
    views = {table: view_sql(data_dir, table) for table in lake_tables(data_dir)}
    for model, path in analytics_models(data_dir).items():
        views[model] = (
            f'CREATE OR REPLACE VIEW "{model}" AS SELECT * FROM '
            f"read_parquet('{_quote(path.absolute().as_posix())}')"
        )
    return views


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(folder.rglob("*.parquet"))


def _quote(text: str) -> str:
    return text.replace("'", "''")


def lake_tables(data_dir: Path) -> list[str]:
    """Tables with files in at least one storefront's lake."""
    tables: set[str] = set()
    for root in storefront_roots(data_dir):
        lake = root / "lake"
        if lake.is_dir():
            tables |= {p.name for p in lake.iterdir() if _has_files(p)}
    return sorted(tables)


def ensure_views(data_dir: Path) -> ViewSync:
    """Create a view per lake table, touching the file only when the definitions changed.

    With an object-store lake the views read this machine's mirror (stable paths, so any
    DuckDB client opens the file; refreshing every storefront's mirror after each sync would
    download all of them): `connect` is what reads the store's current snapshots."""
    data_dir = _deployment_dir(data_dir)
    views = view_statements(data_dir)
    tables, statements = sorted(views), [views[name] for name in sorted(views)]
    digest = hashlib.sha256("\n".join(statements).encode()).hexdigest()
    stamp = data_dir / ".warehouse-views.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("digest") == digest:
        return ViewSync(created=[])
    try:
        with duckdb.connect(str(data_dir / WAREHOUSE_FILE)) as con:
            for sql in statements:
                con.execute(sql)
    except duckdb.IOException as error:
        reason = f"{WAREHOUSE_FILE} is held open by another process; views left as they were"
        log.warning("%s (%s)", reason, error)
        return ViewSync(created=[], skipped_reason=reason)
    stamp.write_text(json.dumps({"digest": digest, "tables": tables}))
    return ViewSync(created=tables)


def connect(data_dir: Path, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A connection that sees every lake table as a view.

    Opens the warehouse file read-only; if a writer holds it (or it does not exist yet), falls
    back to an in-memory database with the same views so queries still answer. With an
    object-store lake, the views read the store's current snapshots there (httpfs, or fsspec
    over pyarrow's S3 client where httpfs cannot be installed).
    """
    lakes = published_lakes(data_dir)
    if lakes:
        return object_store_connection(lakes)
    path = data_dir / WAREHOUSE_FILE
    if path.is_file():
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException:
            log.info("%s is locked; answering from an in-memory catalogue", path)
        else:
            _add_missing_views(con, data_dir)
            return con
    return memory_connection(data_dir)


# A Parquet glob quoted in a stored view definition.
_STORED_PATTERN = re.compile(r"'((?:[^']|'')*\.parquet)'")


def _add_missing_views(con: duckdb.DuckDBPyConnection, data_dir: Path) -> None:
    """Temporary views for lake tables the file does not know yet (e.g. before the next
    sync could write them because an analyst held the file), and for those whose stored
    definition reads other files: a data directory that was moved or copied keeps views
    with the old absolute paths until the next sync rewrites them, and must answer from
    itself meanwhile (a temporary view shadows the stored one of the same name)."""
    stored = {
        name: _patterns(sql)
        for name, sql in con.execute(
            "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal AND NOT temporary"
        ).fetchall()
    }
    for name, sql in view_statements(data_dir).items():
        if stored.get(name) != _patterns(sql):
            con.execute(sql.replace("CREATE OR REPLACE VIEW", "CREATE TEMP VIEW"))


def _patterns(sql: str | None) -> set[str]:
    """The Parquet paths or globs a view's SQL reads."""
    return {m.replace("''", "'") for m in _STORED_PATTERN.findall(sql or "")}


def memory_connection(data_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    for sql in view_statements(data_dir).values():
        con.execute(sql)
    return con


# ---- a lake on object storage ------------------------------------------------------------------


def _deployment_dir(data_dir: Path) -> Path:
    """The deployment's data directory, also when given one storefront's root under it (the
    warehouse spans every storefront)."""
    return data_dir.parent if data_dir.name.startswith(ROOT_PREFIX) else data_dir


def object_store_connection(lakes: list[Lake]) -> duckdb.DuckDBPyConnection:
    """In-memory views over the current snapshot of every lake, read in the object store."""
    con = duckdb.connect(":memory:")
    lakes[0].attach_to_duckdb(con)  # one store, one registration for its URL scheme
    patterns: dict[str, list[str]] = {}
    for lake in lakes:
        assert lake.remote is not None
        snapshot_id = lake.remote.current_id()
        manifest = lake.remote.manifest(snapshot_id) if snapshot_id else None
        for table in (manifest or {}).get("tables", {}):
            assert snapshot_id is not None  # a manifest is read only for a current snapshot
            patterns.setdefault(table, []).append(
                f"{lake.remote.snapshot_url(snapshot_id)}/{table}/**/*.parquet"
            )
    for table, globs in sorted(patterns.items()):
        listed = ", ".join(f"'{_quote(g)}'" for g in globs)
        partitioned = "true" if table in PARTITIONED_TABLES else "false"
        con.execute(
            f'CREATE VIEW "{table}" AS SELECT * FROM read_parquet([{listed}], '
            f"hive_partitioning = {partitioned}, union_by_name = true)"
        )
    return con


# ---- read-only queries ---------------------------------------------------------------------

# What `alter-pipeline query` runs: statements that only read. SHOW, DESCRIBE and SUMMARIZE
# are SELECTs to DuckDB; EXPLAIN is allowed when what it explains is (EXPLAIN ANALYZE runs it).
_READING_STATEMENTS = frozenset({duckdb.StatementType.SELECT})
_EXPLAIN_PREFIX = re.compile(r"^\s*explain(\s+analy[sz]e)?\b", re.IGNORECASE)


class QueryRefused(ValueError):
    """SQL that `query` does not run: empty, or a statement that does more than read."""


def check_read_only(sql: str) -> None:
    """Refuse `sql` unless every statement in it only reads (checked before anything runs)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryRefused(f"SQL error: {str(error).splitlines()[0]}") from error
    if not statements:
        raise QueryRefused("no SQL statement given")
    for statement in statements:
        if statement.type == duckdb.StatementType.EXPLAIN:
            explained = _EXPLAIN_PREFIX.sub("", statement.query, count=1)
            check_read_only(explained)
        elif statement.type not in _READING_STATEMENTS:
            kind = statement.type.name.replace("_", " ")
            raise QueryRefused(
                f"query only reads: a {kind} statement is refused (the warehouse is read-only)"
            )


def allowed_directories(data_dir: Path) -> list[str]:
    """What a read-only query may read: each storefront's current lake (DuckDB follows the
    `lake` link, so the current snapshot's files and nothing else under the data dir)."""
    return [(root.absolute() / "lake").as_posix() + "/" for root in storefront_roots(data_dir)]


def read_only_connection(data_dir: Path) -> duckdb.DuckDBPyConnection:
    """`connect`, then locked down for SQL from a person: files outside the lake and the dbt
    models' Parquet files, extension installs and loads, and any change to these settings are
    refused by DuckDB itself."""
    con = connect(data_dir)
    lakes = published_lakes(data_dir)
    if lakes:  # each lake's URL prefix in the object store (httpfs and fsspec both obey it)
        directories = [lake.remote.url.rstrip("/") + "/" for lake in lakes if lake.remote]
    else:
        directories = allowed_directories(data_dir)
    listed = ", ".join(f"'{_quote(d)}'" for d in directories)
    # The dbt models' Parquet files, one by one (their folder also holds dbt's database).
    models = [p.absolute().as_posix() for p in analytics_models(_deployment_dir(data_dir)).values()]
    paths = ", ".join(f"'{_quote(p)}'" for p in models)
    settings = [
        f"allowed_directories = [{listed}]",
        f"allowed_paths = [{paths}]",
        "enable_external_access = false",
        "autoinstall_known_extensions = false",
        "autoload_known_extensions = false",
    ]
    for setting in [*settings, "lock_configuration = true"]:
        con.execute(f"SET {setting}")
    return con


# ---- DataFrames for notebooks and scripts ------------------------------------------------------


def query(sql: str, params: Any = None, *, data_dir: Path | str | None = None) -> pd.DataFrame:
    """The result of `sql` over the warehouse views as a pandas DataFrame.

        from alter_pipeline import warehouse
        df = warehouse.query("select day, revenue from revenue_daily order by day desc")

    Reads the warehouse read-only (an open DuckDB CLI or a running sync does not get in the
    way); `data_dir` defaults to $ALTER_DATA_DIR. dtypes come from Arrow: money (DECIMAL) is
    `object` holding exact `decimal.Decimal`s, integers `int64` (`float64` where a column has
    NULLs), timestamps `datetime64[us, Etc/UTC]`, dates `object` holding `datetime.date`s, text
    pandas' `str`. `df["revenue"].astype(float)` converts money for plotting.
    """
    with connect(_data_dir(data_dir)) as con:
        return con.sql(sql, params=params).to_arrow_table().to_pandas()


def table(name: str, *, data_dir: Path | str | None = None) -> pd.DataFrame:
    """A whole warehouse view (`orders`, `revenue_daily`, ...) as a DataFrame."""
    folder = _data_dir(data_dir)
    known = set(view_statements(_deployment_dir(folder)))
    if name not in known:
        raise KeyError(f"no table {name!r} in the warehouse; there are: {', '.join(sorted(known))}")
    return query(f'SELECT * FROM "{name}"', data_dir=folder)


def _data_dir(data_dir: Path | str | None) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    from alter_pipeline.config import Settings

    return Settings.from_env().data_dir
