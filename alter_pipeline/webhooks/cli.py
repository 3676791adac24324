"""`alter-pipeline webhooks ...`: deliver, listen, status, replay, check, enable.

Errors print one line (a subscriptions file prints one line per problem) and exit 2 for bad
input or configuration, 1 when the work itself failed; `alter-pipeline --debug` shows tracebacks.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alter_pipeline.config import ConfigError, Settings
from alter_pipeline.contract.fields import as_utc

if TYPE_CHECKING:  # annotations only: the status code is imported when it runs
    from alter_pipeline.webhooks.monitor import WebhooksStatus

webhooks_app = typer.Typer(
    no_args_is_help=True,
    help="Signed webhook deliveries of order events to your own HTTP endpoints.",
)
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")


def _guard(ctx: typer.Context, action: Callable[[], T]) -> T:
    try:
        return action()
    except (typer.Exit, typer.Abort):
        raise
    except (ConfigError, ValueError) as problem:
        _fail(ctx, problem, 2)
    except Exception as failure:
        _fail(ctx, failure, 1)
    raise AssertionError("unreachable")


def _fail(ctx: typer.Context, error: Exception, code: int) -> None:
    # The root command's `--debug` (alter_pipeline.cli) shows the traceback instead.
    if ctx.find_root().params.get("debug"):
        raise error
    for line in str(error).splitlines() or [type(error).__name__]:
        shout("error", line)
    raise typer.Exit(code)


def say(text: str) -> None:
    """One line of output, never re-wrapped, never read as markup (paths hold brackets)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def shout(label: str, text: str) -> None:
    colour = "red" if label == "error" else "yellow"
    errors.print(f"[{colour}]{label}:[/{colour}] {escape(text)}", highlight=False, soft_wrap=True)


def _settings() -> Settings:
    from alter_pipeline.storefronts import for_storefront

    return for_storefront(Settings.from_env())


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


@webhooks_app.command()
def deliver(
    ctx: typer.Context,
    max_batch: int = typer.Option(10_000, "--max-batch", min=1, help="Attempts at most."),
) -> None:
    """Take in new events, send every delivery due now, print a summary and exit."""

    def run() -> None:
        from alter_pipeline.webhooks import deliver_due, ingest, load_subscriptions

        conf = _settings()
        subscriptions = load_subscriptions(conf.webhooks_file)
        queued = ingest(conf, subscriptions=subscriptions)
        report = deliver_due(conf, max_batch=max_batch, subscriptions=subscriptions)
        say(f"queued {queued} new deliveries; {report.summary()}")
        for reason in report.held.values():
            shout("error", reason)
        if report.held:
            raise typer.Exit(2)

    _guard(ctx, run)


@webhooks_app.command()
def listen(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
    port: int = typer.Option(9000, help="Port to listen on (0 picks a free one)."),
    secret_env: str = typer.Option(
        "SHOP_WEBHOOK_SECRET", "--secret-env", help="Variable holding the whsec_ secret."
    ),
) -> None:
    """Receive webhooks locally: verify signatures, print one line per event (400 if bad)."""

    def run() -> None:
        from alter_pipeline.webhooks.receiver import serve
        from alter_pipeline.webhooks.signing import secret_from_env

        secret = secret_from_env(secret_env)

        def listening(url: str) -> None:
            say(f"listening on {url}/ (verifying with ${secret_env}); Ctrl-C stops")

        # uvicorn re-raises Ctrl-C once it has shut down cleanly: that is the normal way out.
        with contextlib.suppress(KeyboardInterrupt):
            serve(secret, host, port, on_line=say, on_listening=listening)
        say("stopped")

    _guard(ctx, run)


@webhooks_app.command()
def status(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Per endpoint: enabled or why not, pending, retrying, dead, delivered, last results."""

    def run() -> None:
        from alter_pipeline.webhooks import status as read_status

        report = read_status(_settings())
        if as_json:
            console.print_json(json.dumps(asdict(report), default=str))
            return
        _print_status(report)

    _guard(ctx, run)


def _print_status(report: WebhooksStatus) -> None:
    table = Table("endpoint", "state", "pending", "retrying", "dead", "delivered")
    for column in ("last success", "last failure", "oldest pending"):
        table.add_column(column)
    for e in report.endpoints:
        table.add_row(
            e.endpoint_id,
            e.state,
            str(e.pending),
            str(e.retrying),
            str(e.dead),
            str(e.delivered),
            _when(e.last_success_at),
            _when(e.last_failure_at),
            _age(e.oldest_pending_age_s),
        )
    if report.endpoints:
        console.print(table)
    else:
        say("no endpoints configured")
    for e in report.endpoints:
        if e.reason:
            say(f"{e.endpoint_id}: {e.state}: {e.reason}")
        if e.paused_until:
            say(f"{e.endpoint_id}: paused until {_when(e.paused_until)}")
        if e.last_error and e.state == "enabled" and (e.retrying or e.dead):
            say(f"{e.endpoint_id}: last error: {e.last_error}")
    lake = "no events yet" if report.lake_sequence is None else f"lake at {report.lake_sequence}"
    say(
        f"cursor {report.cursor} ({lake}, {report.events_waiting} waiting); "
        f"next due {_when(report.next_due_at)}",
    )
    for problem in report.problems:
        shout("warning", problem)


def parse_since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since: expected an ISO-8601 time such as 2026-11-26T10:00:00Z, got {text!r}"
        ) from None
    return as_utc(moment)


@webhooks_app.command()
def replay(
    ctx: typer.Context,
    since: str = typer.Option(..., "--since", help="ISO-8601 time; events detected since then."),
    endpoint: str | None = typer.Option(None, "--endpoint", help="Only this endpoint id."),
    event_type: list[str] = typer.Option(
        [], "--type", help="Only these event types (repeatable; wildcards like 'order.*')."
    ),
) -> None:
    """Queue events detected since a time again, with the same webhook-id."""

    def run() -> None:
        from alter_pipeline.webhooks import replay as requeue

        moment = parse_since(since)
        count = requeue(_settings(), moment, endpoint=endpoint, event_types=event_type or None)
        say(
            f"re-queued {count} deliveries since {moment.isoformat()}; "
            "`alter-pipeline webhooks deliver` sends them",
        )

    _guard(ctx, run)


@webhooks_app.command()
def check(
    ctx: typer.Context, file: Path = typer.Argument(..., help="The subscriptions file to validate.")
) -> None:
    """Validate a subscriptions file: every problem with line:column (exit 2), else a summary."""

    def run() -> None:
        from alter_pipeline.webhooks.config import load_subscriptions
        from alter_pipeline.webhooks.signing import SecretError

        subscriptions = load_subscriptions(file)
        say(f"{file}: {len(subscriptions.endpoints)} endpoints, valid")
        for e in subscriptions.endpoints:
            try:
                e.secret()
                secret = f"${e.secret_env} set"
            except SecretError as problem:
                secret = f"warning: {problem}"
            types = ", ".join(sorted(e.event_types))
            state = "enabled" if e.enabled else "disabled"
            say(
                f"  {e.id} ({state}) -> {e.url}, timeout {e.timeout_s:g} s\n"
                f"    events: {types}\n    secret: {secret}",
            )

    _guard(ctx, run)


@webhooks_app.command()
def enable(
    ctx: typer.Context,
    endpoint: str = typer.Argument(..., help="Endpoint id disabled after 410 Gone."),
) -> None:
    """Re-enable an endpoint that answered 410 Gone (then `replay` what it missed)."""

    def run() -> None:
        from alter_pipeline.webhooks import Outbox

        with Outbox.open(_settings().data_dir) as outbox:
            if not outbox.enable(endpoint):
                raise ConfigError(f"endpoint {endpoint} is not disabled")
        say(f"{endpoint} enabled")

    _guard(ctx, run)
