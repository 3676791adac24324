"""The dbt project of the dashboard models (analytics/ in the checkout) and where it writes.

dbt reads the lake through views in its own database file and writes each dashboard model to
one Parquet file; `warehouse.duckdb` gets a view of the same name over that file. So dbt never
opens the warehouse file, and an analyst holding it open (DuckDB CLI, a notebook, a BI tool)
never blocks a refresh:

    $ALTER_DATA_DIR/analytics/dbt.duckdb           dbt's database: lake.<table> views, staging
    $ALTER_DATA_DIR/analytics/<model>.parquet      one file per dashboard model
    $ALTER_DATA_DIR/analytics/report.html          the charts (alter_pipeline/report.py)

Knows nothing of Dagster (alter_pipeline/assets/analytics.py loads the project into it).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from alter_pipeline.lake.schemas import TABLE_SCHEMAS
from alter_pipeline.warehouse import ANALYTICS_DIR, table_patterns

# The checkout's dbt project; ALTER_DBT_PROJECT_DIR points a deployment at a copy elsewhere.
DBT_PROJECT_DIR = Path(
    os.environ.get("ALTER_DBT_PROJECT_DIR") or Path(__file__).resolve().parents[1] / "analytics"
)
DBT_DATABASE = "dbt.duckdb"
# The lake tables the models read (dbt source `lake`).
SOURCE_TABLES = ("orders", "order_items", "products")
# The dashboard models, in the order the README and the report present them.
DASHBOARD_MODELS = (
    "revenue_daily",
    "order_status_funnel",
    "top_products",
    "top_variants",
    "top_materials",
    "top_print_types",
    "abandoned_carts",
)
# The column each model's preview sorts on, newest or largest first.
NEWEST_FIRST = {
    "revenue_daily": "day DESC, currency",
    "abandoned_carts": "created_at DESC, order_id",
}


def analytics_dir(data_dir: Path) -> Path:
    return data_dir / ANALYTICS_DIR


def model_file(data_dir: Path, model: str) -> Path:
    """The Parquet file dbt writes for `model` (its external materialization)."""
    return analytics_dir(data_dir) / f"{model}.parquet"


def dbt_executable() -> str:
    """The `dbt` of this interpreter's environment (a venv's bin/), not whatever PATH finds."""
    beside = Path(sys.executable).parent / ("dbt.exe" if os.name == "nt" else "dbt")
    if beside.is_file():
        return str(beside)
    found = shutil.which("dbt")
    if found is None:
        raise FileNotFoundError(
            f"dbt is not installed beside {sys.executable}: run `make install` (dbt-duckdb)"
        )
    return found


def dbt_vars(data_dir: Path, **extra: object) -> str:
    """The `--vars` argument: where dbt writes (see analytics/profiles.yml), plus `extra`."""
    return json.dumps({"data_dir": data_dir.absolute().as_posix(), **extra})


@contextmanager
def dbt_lock(data_dir: Path) -> Iterator[None]:
    """One dbt run at a time per data directory (a scheduled and an automated refresh may
    overlap): dbt opens its database file for writing, so the second waits for the first."""
    folder = analytics_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".dbt.lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def prepare_sources(data_dir: Path) -> list[str]:
    """Create or refresh the `lake.<table>` views of dbt's database over every storefront's
    lake; a table no storefront has yet is an empty table of its schema. Returns the tables
    that have files."""
    folder = analytics_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    present = []
    with duckdb.connect(str(folder / DBT_DATABASE)) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS lake")
        for table in SOURCE_TABLES:
            patterns = table_patterns(data_dir, table)
            if patterns:
                globs = ", ".join("'" + p.replace("'", "''") + "'" for p in patterns)
                con.execute(
                    f'CREATE OR REPLACE VIEW lake."{table}" AS SELECT * FROM read_parquet('
                    # storefront_id=<id>/ in a path is a lake root, not a hive partition
                    f"[{globs}], hive_partitioning = false, union_by_name = true)"
                )
                present.append(table)
            else:
                empty = pa.table({f.name: pa.array([], f.type) for f in TABLE_SCHEMAS[table]})
                con.register("empty_source", empty)
                con.execute(f'DROP VIEW IF EXISTS lake."{table}"')
                con.execute(f'CREATE OR REPLACE TABLE lake."{table}" AS FROM empty_source')
                con.unregister("empty_source")
    return present


def manifest_is_stale(project_dir: Path = DBT_PROJECT_DIR) -> bool:
    """No manifest yet, or a model, test, macro or setting changed after it was written."""
    manifest = project_dir / "target" / "manifest.json"
    if not manifest.is_file():
        return True
    written = manifest.stat().st_mtime
    sources = (
        p
        for p in project_dir.rglob("*")
        if p.suffix in (".sql", ".yml", ".yaml")
        and "target" not in p.relative_to(project_dir).parts
    )
    return any(p.stat().st_mtime > written for p in sources)


def parse_project(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """`dbt parse`: writes the manifest Dagster loads the models from (make install runs it)."""
    subprocess.run(
        [dbt_executable(), "parse", "--quiet"],
        cwd=project_dir,
        env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        check=True,
    )
    return project_dir / "target" / "manifest.json"


def build_models(data_dir: Path, *dbt_args: str) -> subprocess.CompletedProcess[str]:
    """`dbt build` outside Dagster (the benchmark; scripts): sources prepared, artifacts
    (run_results.json with each model's compiled SQL) in $ALTER_DATA_DIR/analytics/target."""
    target = (analytics_dir(data_dir) / "target").absolute()
    with dbt_lock(data_dir):
        prepare_sources(data_dir)
        return subprocess.run(
            [dbt_executable(), "build", "--vars", dbt_vars(data_dir), *dbt_args],
            cwd=DBT_PROJECT_DIR,
            env={
                **os.environ,
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "DBT_TARGET_PATH": str(target),
                "DBT_LOG_PATH": str(target),
            },
            check=True,
            capture_output=True,
            text=True,
        )


def compiled_models(data_dir: Path) -> dict[str, str]:
    """Each dashboard model's SELECT as dbt last compiled it (after `build_models`)."""
    results = json.loads((analytics_dir(data_dir) / "target" / "run_results.json").read_text())
    compiled = {
        r["unique_id"].rsplit(".", 1)[-1]: r.get("compiled_code") for r in results["results"]
    }
    return {name: compiled[name] for name in DASHBOARD_MODELS if compiled.get(name)}
