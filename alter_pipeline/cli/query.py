"""`alter-pipeline query` (read-only SQL over the warehouse) and `alter-pipeline report`
(the analytics dashboard as one HTML file)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import redirect_stdout
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import typer
from rich.table import Table

from alter_pipeline.cli.base import UsageProblem, console, errors, guarded, settings


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


# Table output keeps this many rows (rich lays a table out in memory); csv and json stream all.
TABLE_ROW_LIMIT = 1000
_FETCH_BATCH = 10_000


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
        # 0.15 s to import (DuckDB; python -X importtime): only `query` needs it
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

    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)  # a reader of the hand-off never sees half a file
    console.print(f"{table.num_rows} rows written to {path}", highlight=False)


def report(
    output_file: Path | None = typer.Option(
        None, "--output", "-o", help="Where to write (default: $ALTER_DATA_DIR/analytics/...)."
    ),
) -> None:
    """Write the analytics dashboard (revenue by day, status funnel, top products and
    materials, abandoned carts) as one self-contained HTML file, from the dbt models."""

    def run() -> None:
        # 1.7-3.8 s to import (Altair, vl-convert; python -X importtime): only `report` needs it
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
