"""`alter-pipeline emulator` (a local emulator of the Alter API) and `alter-pipeline ui`
(the Dagster UI pointed at a live emulator)."""

from __future__ import annotations

from typing import Any

import typer

from alter_pipeline.cli.base import guarded


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
        # 0.4 s to import (python -X importtime): only `emulator` needs it
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


def ui(
    port: int = typer.Option(3000, help="Port of the Dagster UI."),
    emulator_port: int = typer.Option(8787, help="Port of the live emulator."),
    orders: int = typer.Option(2000, help="Orders in the live emulator."),
) -> None:
    """Start the Dagster UI pointed at a live emulator, schedules and sensors running."""
    # 0.5 s to import (python -X importtime): only `ui` needs it
    from alter_pipeline.ui import exit_code_on_stop, run_ui

    def run() -> None:
        run_ui(port=port, emulator_port=emulator_port, orders=orders)

    with exit_code_on_stop():
        guarded(run)
