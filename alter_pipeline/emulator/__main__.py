"""`python -m alter_pipeline.emulator [--port 8787] [--orders N] ...`: serve in the foreground.

The flags are those of `alter-pipeline emulator`; both build an `EmulatorConfig`.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence

from alter_pipeline.contract import SCOPES
from alter_pipeline.emulator.config import EmulatorConfig
from alter_pipeline.emulator.server import serve


def parse_args(argv: Sequence[str] | None = None) -> EmulatorConfig:
    parser = argparse.ArgumentParser(
        prog="python -m alter_pipeline.emulator",
        description="Serve a local emulator of the Alter public API v1.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to bind (default: loopback)")
    add("--port", type=int, default=8787, help="port (0 picks a free one; default: 8787)")
    add("--orders", type=int, default=2000, help="synthetic orders (default: 2000)")
    add("--products", type=int, default=24, help="synthetic products (default: 24)")
    add("--seed", type=int, default=7, help="seed of the synthetic storefront (default: 7)")
    add("--key", help="accepted API key (else $ALTER_API_KEY, else the demo key)")
    add("--token", help="accepted API token (else $ALTER_API_TOKEN, else the demo token)")
    add("--scopes", help=f"comma-separated granted scopes (default: {','.join(SCOPES)})")
    add("--latency-ms", type=float, default=0.0, help="latency added to every response")
    add("--fault-rate", type=float, default=0.0, help="share of requests answered 5xx HTML")
    add("--rate-limit", type=float, help="requests per second before 429 (default: none)")
    add("--live", action="store_true", help="shoppers keep creating and changing orders")
    add("--live-rate", type=float, default=5.0, help="shopper actions per second (live mode)")
    args = parser.parse_args(argv)
    scopes = SCOPES
    if args.scopes:
        scopes = tuple(s.strip() for s in args.scopes.split(",") if s.strip())
    try:
        return EmulatorConfig(
            host=args.host,
            port=args.port,
            orders=args.orders,
            products=args.products,
            seed=args.seed,
            key=args.key,
            token=args.token,
            scopes=scopes,
            latency_ms=args.latency_ms,
            fault_rate=args.fault_rate,
            rate_limit=args.rate_limit,
            live=args.live,
            live_rate=args.live_rate,
        )
    except ValueError as error:
        parser.error(str(error))


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the way to stop it
        serve(config)


if __name__ == "__main__":
    main()
