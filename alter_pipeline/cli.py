"""`alter-pipeline`: the shop operator's command line.

Errors print one line and exit 2 (bad input or configuration) or 1 (the run failed);
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alter_pipeline.config import ConfigError, Settings

if TYPE_CHECKING:  # annotations only: jobs_runner loads the definitions, when a job runs
    from alter_pipeline.jobs_runner import JobOutcome

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
auth_app = typer.Typer(no_args_is_help=True, help="Check API credentials.")
app.add_typer(auth_app, name="auth")


def _add_sub_apps() -> None:
    from alter_pipeline.inbound.cli import inbound_app
    from alter_pipeline.rules.cli import rules_app
    from alter_pipeline.webhooks.cli import webhooks_app

    app.add_typer(rules_app, name="rules")
    app.add_typer(webhooks_app, name="webhooks")
    app.add_typer(inbound_app, name="inbound")


_add_sub_apps()

console = Console()
errors = Console(stderr=True, soft_wrap=True)
_state = {"debug": False}
T = TypeVar("T")


class UsageProblem(Exception):
    """Bad input from the person at the keyboard: exit code 2."""


class RunFailed(Exception):
    """The work itself failed: exit code 1."""


INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what shells report for Ctrl-C
INTERRUPTED = "interrupted: nothing was committed, the previous snapshot stays current"


def guarded(action: Callable[[], T]) -> T:
    """Run `action`, turning known failures into one line on stderr and an exit code."""
    try:
        return action()
    except KeyboardInterrupt:
        if _state["debug"]:
            raise
        errors.print(INTERRUPTED, highlight=False)
        raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
    except (UsageProblem, ConfigError) as problem:
        _fail(problem, 2)
    except RunFailed as failure:
        _fail(failure, 1)
    except Exception as error:  # the client's typed errors and anything unforeseen
        _fail(error, _exit_code_for(error))
    raise AssertionError("unreachable")


def _exit_code_for(error: Exception) -> int:
    from alter_pipeline.api.errors import AlterAPIError

    return 1 if isinstance(error, AlterAPIError) else 2 if isinstance(error, ValueError) else 1


def _fail(error: Exception, code: int) -> None:
    if _state["debug"]:
        raise error
    message = escape(_storage_failure(error) or str(error))
    errors.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def _storage_failure(error: Exception) -> str | None:
    """One line for a failure of Dagster's own storage (SQLAlchemy prints the SQL statement
    and a link over a dozen lines); None for any other error."""
    if not type(error).__module__.startswith("sqlalchemy"):
        return None
    cause = getattr(error, "orig", None) or error
    reason = (str(cause).strip().splitlines() or [""])[0]
    home = os.environ.get("DAGSTER_HOME", "dagster_home")
    return (
        f"Dagster's storage in {home} failed: {type(cause).__name__}: {reason} "
        "(a full disk? a file it cannot write?)"
    )


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    _state["debug"] = debug


def settings() -> Settings:
    return Settings.from_env()


# ---- auth --------------------------------------------------------------------------------


@auth_app.command("check")
def auth_check() -> None:
    """Print the storefront, credential and scopes the configured key and token give."""

    def check() -> None:
        from alter_pipeline.api import AlterClient

        conf = settings()
        conf.require_credentials()
        with AlterClient(conf.base_url, conf.api_key, conf.api_token) as client:
            info = client.auth_check()
        console.print(f"API:         {conf.base_url}")
        console.print(f"storefront:  {info.storefront_id}")
        console.print(f"owner:       {info.user_owner_id}")
        console.print(f"credential:  {info.credential_id}")
        console.print(f"scopes:      {', '.join(info.scopes) or '(none)'}")

    guarded(check)


# ---- sync and analytics ------------------------------------------------------------------


@app.command()
def sync(
    full: bool = typer.Option(False, "--full", help="Read every order (a reconcile)."),
    storefront: str | None = typer.Option(
        None, "--storefront", help="With storefronts.yaml: sync only this one (default: all)."
    ),
) -> None:
    """Sync orders, items and products into the lake, as a recorded Dagster run (one per
    storefront when storefronts.yaml lists several)."""

    def run() -> None:
        conf = settings()
        run_config = {"ops": {"alter_sync": {"config": {"full": full}}}}
        for name, outcome in _each_storefront("sync_job", conf, storefront, run_config):
            _print_sync(name, outcome)

    guarded(run)


def _print_sync(name: str | None, outcome: Any) -> None:
    meta = outcome.metadata
    orders, items = meta.get("orders", {}), meta.get("order_items", {})
    console.print(
        f"{f'{name}: ' if name else ''}"
        f"{orders.get('mode', 'full')} sync: {orders.get('dagster/row_count', 0)} orders, "
        f"{items.get('dagster/row_count', 0)} items, "
        f"{meta.get('products', {}).get('dagster/row_count', 0)} products in "
        f"{orders.get('sync_duration_s', 0)} s with {orders.get('api_requests', 0)} requests "
        f"(run {outcome.run_id}); events: {orders.get('events') or 'none'}"
    )
    check = orders.get("self_check") or {}
    escalated = orders.get("escalated_to_full")
    if check.get("path") == "located" or escalated:
        found = (
            f"self-check: {check.get('deletions_found', 0)} deletions, "
            f"{check.get('ghosts_dropped', 0)} ghosts, {check.get('status_changes_found', 0)} "
            f"status changes found with {check.get('requests', 0)} requests"
        )
        console.print(found + (f"; listed every order: {escalated}" if escalated else ""))
    if orders.get("previous_snapshot_unreadable"):
        console.print(
            f"the previous snapshot could not be read ({orders['previous_snapshot_unreadable']}):"
            " the lake was rebuilt, and this sync's change events were computed against nothing",
            highlight=False,
            markup=False,
            soft_wrap=True,  # one line
        )
    if outcome.failed_checks:
        raise RunFailed(f"failed checks: {', '.join(outcome.failed_checks)}")


def _each_storefront(
    job: str, conf: Settings, only: str | None, run_config: dict[str, Any] | None = None
) -> Iterator[tuple[str | None, Any]]:
    """Run `job` once, or once per storefront of storefronts.yaml (or just `only`); a failing
    storefront does not stop the others, and the command fails at the end naming each."""
    from alter_pipeline.storefronts import configured

    storefronts = configured(conf.storefronts_file)
    if storefronts is None:
        if only is not None:
            raise UsageProblem(f"--storefront needs {conf.storefronts_file}, not found")
        if job == "sync_job":
            conf.require_credentials()
        yield None, _run_with_progress(job, conf, run_config or {})
        return
    only = only or conf.storefront
    names = [storefronts.get(only).name] if only else storefronts.names
    failures = []
    for name in names:
        try:
            yield name, _run_with_progress(job, conf, run_config or {}, partition=name)
        except RunFailed as error:
            console.print(f"[red]{name}: {error}[/red]")
            failures.append(name)
    if failures:
        raise RunFailed(f"{job} failed for {', '.join(failures)} (the others succeeded)")


@app.command()
def analytics(
    storefront: str | None = typer.Option(
        None, "--storefront", help="With storefronts.yaml: only this one (default: all)."
    ),
) -> None:
    """Rebuild the dbt models (the dashboard tables) and run their tests, as a recorded
    Dagster run; the models span every storefront (a storefront_id column)."""

    def run() -> None:
        if storefront is not None:
            console.print("[yellow]--storefront: the models span every storefront[/yellow]")
        outcome = _run_with_progress("analytics_job", settings(), {})
        console.print(f"analytics tables rebuilt: {', '.join(sorted(outcome.metadata))}")
        if outcome.failed_checks:  # tests of severity warn (a failing error test fails the run)
            console.print(f"[yellow]dbt tests warn: {', '.join(outcome.failed_checks)}[/yellow]")

    guarded(run)


def _run_job(
    name: str,
    conf: Settings,
    run_config: dict[str, Any] | None = None,
    partition: str | None = None,
) -> JobOutcome:
    from alter_pipeline.jobs_runner import run_job

    outcome = run_job(name, conf, run_config, partition_key=partition)
    if not outcome.success and (outcome.error or "").startswith("DagsterExecutionInterrupted"):
        raise KeyboardInterrupt  # Dagster turned Ctrl-C into a failed step
    if not outcome.success:
        raise RunFailed(f"{name} failed: {outcome.error} (run {outcome.run_id})")
    return outcome


def _run_with_progress(
    name: str, conf: Settings, run_config: dict[str, Any], partition: str | None = None
) -> JobOutcome:
    from rich.progress import Progress

    from alter_pipeline import sync as sync_module

    if not console.is_terminal:
        return _run_job(name, conf, run_config, partition)
    with Progress(console=console, transient=True) as progress:
        tasks: dict[str, Any] = {}

        def show(entity: str, done: int, total: int, rows: int) -> None:
            if entity not in tasks:
                tasks[entity] = progress.add_task(entity, total=total)
            progress.update(
                tasks[entity], completed=done, total=total, description=f"{entity} {rows}"
            )

        sync_module.progress_listeners.append(show)
        try:
            return _run_job(name, conf, run_config, partition)
        finally:
            sync_module.progress_listeners.remove(show)


# ---- query -------------------------------------------------------------------------------


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


# Table output keeps this many rows (rich lays a table out in memory); csv and json stream all.
TABLE_ROW_LIMIT = 1000
_FETCH_BATCH = 10_000


@app.command()
def query(
    sql: str = typer.Argument(..., help="SQL over the warehouse views (orders, order_items, ...)."),
    output: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f"),
    output_file: Path | None = typer.Option(
        None, "--output", "-o", help="Write the result to this file (required for parquet)."
    ),
) -> None:
    """Run read-only SQL against the DuckDB warehouse and print the result (it may read the
    lake's tables, nothing else: no other files, no writes, no extensions), or write it to a
    file: `--format parquet --output FILE` hands a result over with its types, decimals exact."""

    def run() -> None:
        import duckdb

        from alter_pipeline.warehouse import QueryRefused, check_read_only, read_only_connection

        if output is OutputFormat.parquet and output_file is None:
            raise UsageProblem("--format parquet needs --output FILE")
        try:
            check_read_only(sql)
        except QueryRefused as refused:
            raise UsageProblem(str(refused)) from refused
        with read_only_connection(settings().data_dir) as con:
            try:
                if output is OutputFormat.parquet:
                    assert output_file is not None
                    _write_parquet(con.sql(sql).to_arrow_table(), output_file)
                    return
                cursor = con.execute(sql)
                columns = [d[0] for d in cursor.description or []]
                if output_file is None:
                    _print_rows(columns, cursor, output)
                    return
                with (
                    output_file.open("w", encoding="utf-8", newline="") as handle,
                    redirect_stdout(handle),
                ):
                    _print_rows(columns, cursor, output)
            except duckdb.PermissionException as error:
                raise UsageProblem(
                    f"query may read only the lake's tables: {str(error).splitlines()[0]}"
                ) from error
            except duckdb.Error as error:
                raise UsageProblem(f"SQL error: {str(error).splitlines()[0]}") from error

    guarded(run)


def _write_parquet(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)  # a reader of the hand-off never sees half a file
    console.print(f"{table.num_rows} rows written to {path}", highlight=False)


@app.command()
def report(
    output_file: Path | None = typer.Option(
        None, "--output", "-o", help="Where to write (default: $ALTER_DATA_DIR/analytics/...)."
    ),
) -> None:
    """Write the analytics dashboard (revenue by day, status funnel, top products and
    materials, abandoned carts) as one self-contained HTML file, from the dbt models."""

    def run() -> None:
        from alter_pipeline.report import ReportError, write_report

        try:
            path = write_report(settings().data_dir, output_file)
        except ReportError as error:
            raise UsageProblem(str(error)) from None
        console.print(f"report written to {path}", highlight=False)

    guarded(run)


def _batches(cursor: Any) -> Iterator[list[tuple[Any, ...]]]:
    while batch := cursor.fetchmany(_FETCH_BATCH):
        yield batch


def _print_rows(columns: list[str], cursor: Any, output: OutputFormat) -> None:
    """Stream the rows of `cursor` (memory stays flat for csv and json, whatever the size)."""
    if output is OutputFormat.json:
        sys.stdout.write("[")
        first = True
        for batch in _batches(cursor):
            for row in batch:
                record = dict(zip(columns, row, strict=True))
                text = json.dumps(record, default=str, ensure_ascii=False, indent=2)
                sys.stdout.write(("\n" if first else ",\n") + _indent(text))
                first = False
        sys.stdout.write("]\n" if first else "\n]\n")
    elif output is OutputFormat.csv:
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        for batch in _batches(cursor):
            writer.writerows(batch)
    else:
        rows = cursor.fetchmany(TABLE_ROW_LIMIT + 1)
        table = Table(*columns, show_lines=False)
        for row in rows[:TABLE_ROW_LIMIT]:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
        if len(rows) > TABLE_ROW_LIMIT:
            errors.print(
                f"showing the first {TABLE_ROW_LIMIT} rows; --format csv or json prints all "
                "(or add a LIMIT)",
                highlight=False,
            )


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


# ---- emulator and UI -----------------------------------------------------------------------


@app.command()
def emulator(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
    port: int = typer.Option(8787, help="Port to listen on (0 picks a free one)."),
    orders: int = typer.Option(2000, help="Synthetic orders to generate."),
    products: int = typer.Option(24, help="Synthetic products to generate."),
    seed: int = typer.Option(7, help="Seed of the synthetic storefront."),
    key: str | None = typer.Option(None, help="Accepted API key (else $ALTER_API_KEY, else demo)."),
    token: str | None = typer.Option(None, help="Accepted API token (else $ALTER_API_TOKEN)."),
    scopes: str | None = typer.Option(None, help="Comma-separated scopes (default: all four)."),
    latency_ms: float = typer.Option(0.0, help="Added latency per response."),
    fault_rate: float = typer.Option(0.0, help="Share of requests answered 500/502/503."),
    rate_limit: float | None = typer.Option(None, help="Requests per second before 429."),
    live: bool = typer.Option(False, help="Shoppers keep creating and changing orders."),
    live_rate: float = typer.Option(5.0, help="Shopper actions per second in live mode."),
) -> None:
    """Serve a local emulator of the Alter public API (no credentials needed)."""

    def run() -> None:
        from alter_pipeline.emulator import EmulatorConfig
        from alter_pipeline.emulator.server import serve

        # `--scopes ''` grants none (a credential without scopes), not the default four.
        granted: dict[str, Any] = (
            {"scopes": tuple(s.strip() for s in scopes.split(",") if s.strip())}
            if scopes is not None
            else {}
        )
        config = EmulatorConfig(
            host=host,
            port=port,
            orders=orders,
            products=products,
            seed=seed,
            key=key,
            token=token,
            latency_ms=latency_ms,
            fault_rate=fault_rate,
            rate_limit=rate_limit,
            live=live,
            live_rate=live_rate,
            **granted,
        )
        serve(config)

    guarded(run)


@app.command()
def maintenance(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Apply the retention rules: forget delivered webhook rows (ALTER_WEBHOOK_RETENTION_DAYS,
    30), finished rules-ledger transitions (ALTER_RULES_LEDGER_RETENTION_DAYS, 90) and
    snapshots beyond ALTER_SNAPSHOTS_KEPT (3), in every lake root. Never a pending delivery,
    a claim in flight or the history tables."""

    def run() -> None:
        from alter_pipeline.maintenance import run_maintenance

        reports = run_maintenance(settings())
        if as_json:
            print(json.dumps([r.as_dict() for r in reports], indent=2))
            return
        if not reports:
            console.print("nothing to maintain: no lake, outbox or ledger yet")
        for report in reports:
            outbox = report.outbox
            console.print(
                f"{report.root}: {outbox.get('deliveries', 0)} delivered webhook rows "
                f"({outbox.get('attempts', 0)} attempts, {outbox.get('events', 0)} bodies), "
                f"{report.ledger_transitions} ledger transitions, "
                f"{len(report.snapshots)} snapshots removed",
                highlight=False,
            )

    guarded(run)


@app.command()
def ui(
    port: int = typer.Option(3000, help="Port of the Dagster UI."),
    emulator_port: int = typer.Option(8787, help="Port of the live emulator."),
    orders: int = typer.Option(2000, help="Orders in the live emulator."),
) -> None:
    """Start the Dagster UI pointed at a live emulator, schedules and sensors running."""

    from alter_pipeline.ui import exit_code_on_stop, run_ui

    def run() -> None:
        run_ui(port=port, emulator_port=emulator_port, orders=orders)

    with exit_code_on_stop():
        guarded(run)


def main() -> None:
    try:
        app()
    finally:
        # The command is over: a Ctrl-C now would only print a traceback from whatever runs
        # at interpreter exit (garbage collection, atexit hooks).
        signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":
    main()
