"""`alter-pipeline inbound ...`: serve, status, check.

Errors print one line (an invalid inbound.yaml one line per problem) and exit 2 for bad input
or configuration, 1 when the work itself failed; `alter-pipeline --debug` shows tracebacks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from alter_pipeline.cli.base import guarded
from alter_pipeline.config import Settings
from alter_pipeline.inbound.config import (
    InboundConfig,
    InboundConfigError,
    inbound_file,
    load_inbound,
)

inbound_app = typer.Typer(
    no_args_is_help=True,
    help="Signed webhooks from payment and shop platforms that drive order status rules.",
)
console = Console()
# The server (inbound.server: the HTTP app, the inboxes) is imported by `serve` and `status`:
# 0.24 s over the CLI's own start-up (python -X importtime), which `check` does not need.


def _say(line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _config(path: Path | None) -> InboundConfig:
    """The sources file, or each of its problems on stderr (FILE:LINE:COL) and exit code 2."""
    path = path or inbound_file()
    try:
        return load_inbound(path)
    except InboundConfigError as error:
        for line in error.problems:
            typer.echo(line, err=True)
        raise typer.Exit(2) from None


FILE_OPTION = typer.Option(None, "--file", help="The sources file (default: $ALTER_INBOUND_FILE).")


@inbound_app.command("check")
def check(file: Path | None = FILE_OPTION) -> None:
    """Validate inbound.yaml and that every secret variable is set (never printing one)."""
    config = _config(file)

    def run() -> None:
        for source in config.sources:
            source.secrets()  # a missing variable: one line naming it, exit 2
            extra = f", header {source.header} ({source.encoding})" if source.header else ""
            tolerance = f", tolerance {source.tolerance_s} s" if source.kind != "shopify" else ""
            _say(f"{source.id}: POST {source.path} ({source.kind}{extra}{tolerance})")
        _say(f"{len(config.sources)} sources; bodies over {config.max_body_bytes} bytes get 413")

    guarded(run)


@inbound_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8686, help="Port to listen on."),
    file: Path | None = FILE_OPTION,
    quiet: bool = typer.Option(False, "--quiet", help="No line per request."),
) -> None:
    """Receive signed webhooks, verify them and store them in the inbox (Ctrl-C stops)."""
    from alter_pipeline.inbound.server import InboundApp, open_inboxes
    from alter_pipeline.inbound.server import serve as serve_forever

    config = _config(file)

    def build() -> InboundApp:
        inboxes = open_inboxes(config, Settings.from_env())
        return InboundApp(config, inboxes, on_line=None if quiet else _stamped)

    app = guarded(build)

    def listening(url: str) -> None:
        for source in config.sources:
            _say(f"{source.id} ({source.kind}): POST {url}{source.path}")
        _say("Ctrl-C stops.")

    serve_forever(app, host, port, on_listening=listening)


def _stamped(line: str) -> None:
    _say(f"{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} {line}")


@inbound_app.command("status")
def status(file: Path | None = FILE_OPTION) -> None:
    """Per source: received, rejected (by reason), pending, applied, skipped, failed, dead."""
    from alter_pipeline.inbound.server import open_inboxes

    config = _config(file)

    def run() -> None:
        inboxes = open_inboxes(config, Settings.from_env())
        stats: dict[str, dict[str, int]] = {}
        for inbox in {id(i): i for i in inboxes.values()}.values():
            stats |= inbox.stats()
        table = Table(
            "source",
            "received",
            "duplicates",
            "rejected",
            "pending",
            "applied",
            "skipped",
            "failed",
            "dead",
            title="inbound events",
        )
        for source in config.sources:
            entry = stats.get(source.id, {})
            rejected = {
                k.split(":", 1)[1]: n for k, n in entry.items() if k.startswith("rejected:")
            }
            reasons = ", ".join(f"{k} {n}" for k, n in sorted(rejected.items()))
            total = sum(rejected.values())
            table.add_row(
                source.id,
                str(entry.get("received", 0)),
                str(entry.get("duplicate", 0)),
                f"{total} ({reasons})" if total else "0",
                str(entry.get("pending", 0) + entry.get("claimed", 0)),
                *(str(entry.get(state, 0)) for state in ("applied", "skipped", "failed", "dead")),
            )
        console.print(table)

    guarded(run)
