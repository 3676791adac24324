"""Write a `make bench` run's figures into docs/performance.md and the README.

    python -m benchmarks.syncbench.docs [benchmarks/results/<date>.json]

Replaces what lies between the `<!-- syncbench:results -->` and `<!-- /syncbench:results -->`
markers of both files with the run's table, its extras and its targets (measured / goal /
met), as `report.table` prints them at the end of the run, and says which run they come from.
Without an argument: the newest full run in benchmarks/results.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from benchmarks.syncbench import report
from benchmarks.syncbench.cli import RESULTS
from benchmarks.syncbench.measure import ROOT

START, END = "<!-- syncbench:results -->", "<!-- /syncbench:results -->"
PAGES = {ROOT / "docs" / "performance.md": "../", ROOT / "README.md": ""}
FULL_RUN = re.compile(r"\d{4}-\d{2}-\d{2}(-\d{4})?\.json")  # not the -million runs


def newest_full_run(directory: Path = RESULTS) -> Path:
    runs = [p for p in directory.glob("*.json") if FULL_RUN.fullmatch(p.name)]
    # <date>.json is that day's first run, <date>-<HHMM>.json a later one
    runs.sort(key=lambda p: p.stem if len(p.stem) > 10 else f"{p.stem}-0000")
    if not runs:
        raise SystemExit(f"no results in {directory}: run `make bench` first")
    return runs[-1]


def block(results: dict[str, Any], source: Path, prefix: str) -> str:
    """The generated text for a page whose links to the repository start with `prefix`."""
    relative = source.resolve().relative_to(ROOT).as_posix()
    machine = results["machine"]
    lines = [
        START,
        f"From `{relative}`: `make bench` started {results['started_at']}, "
        f"{results['duration_s'] / 60:.0f} minutes on {machine['cpus']} cores, Python "
        f"{machine['python']}, dagster {machine.get('dagster')}, duckdb {machine.get('duckdb')}, "
        f"pyarrow {machine.get('pyarrow')}, httpx {machine.get('httpx')}, dlt "
        f"{machine.get('dlt') or 'not installed'} (regenerate: "
        "`python -m benchmarks.syncbench.docs`).",
        "",
    ]
    chart = source.with_suffix(".png")
    if chart.exists():
        chart_path = chart.resolve().relative_to(ROOT).as_posix()
        lines += [f"![Full sync throughput against store size]({prefix}{chart_path})", ""]
    lines += [report.table(results), END]
    return "\n".join(lines)


def rewrite(page: Path, text: str) -> None:
    content = page.read_text()
    if START not in content or END not in content:
        raise SystemExit(f"{page}: no {START} ... {END} markers to write between")
    before, rest = content.split(START, 1)
    _, after = rest.split(END, 1)
    page.write_text(before + text + after)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="?", type=Path, help="a full run's JSON")
    args = parser.parse_args(argv)
    source = args.results or newest_full_run()
    results = json.loads(source.read_text())
    for page, prefix in PAGES.items():
        rewrite(page, block(results, source, prefix))
        print(f"{page.relative_to(ROOT)}: figures of {source.name}")


if __name__ == "__main__":
    main()
