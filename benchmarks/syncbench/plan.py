"""What one run measures: sizes, repetitions, concurrencies (full and quick)."""

from __future__ import annotations

from dataclasses import dataclass

FAST = ("alter-pipeline", "limit")  # measured `reps` times
SLOW = ("dlt", "naive")  # sequential peers: `slow_reps` and `naive_reps` times (minutes each)
CONTENDERS = ("alter-pipeline", "dlt", "naive", "limit")


@dataclass(frozen=True)
class Plan:
    name: str
    main_orders: int  # the store the targets are stated for
    reps: int
    slow_reps: int  # dlt, the peer of the speed target
    scale_orders: tuple[int, ...]  # smaller stores, every contender once (chart)
    big_orders: int  # memory growth and analytics: alter-pipeline `big_reps` times, the limit once
    concurrencies: tuple[int, ...]  # swept on the first scale store (else the main one)
    concurrency: int = 8
    swept: tuple[str, ...] = FAST  # the contenders the concurrency sweep measures
    naive_reps: int = 1  # the naive baseline (no target): its 2.5 minutes once at 100k
    big_reps: int = 2
    contenders: tuple[str, ...] = CONTENDERS
    cli: bool = True  # one `alter-pipeline sync --full` (Dagster start-up included)
    touched_fraction: float = 0.01
    store_hour_s: float = 3600.0
    analytics_runs: int = 5
    rate_limits: tuple[float, ...] = (20.0, 100.0)  # the emulator's --rate-limit, requests/s
    rate_seconds: float = 20.0  # each rate-limited store holds about this long a sync
    high_latency_ms: float = 150.0  # an API across an ocean: the main store, ours vs the limit
    million_orders: int = 1_000_000  # opt-in (--million): full and incremental, once each


FULL = Plan(
    name="full",
    main_orders=100_000,
    reps=3,
    slow_reps=2,
    scale_orders=(10_000,),
    big_orders=400_000,
    concurrencies=(1, 2, 4, 8, 16),
    big_reps=1,  # about 2.5 minutes a run
)

QUICK = Plan(
    name="quick",
    main_orders=1_000,
    reps=1,
    slow_reps=1,
    scale_orders=(),
    big_orders=2_000,
    concurrencies=(1, 8),
    # The sweep exercised once by its cheap contender: another alter-pipeline run (interpreter
    # and Dagster start-up, about 10 s under load) would prove nothing the smoke test asserts.
    swept=("limit",),
    big_reps=1,
    cli=False,
    analytics_runs=2,
    rate_limits=(20.0,),
    rate_seconds=2.0,
    million_orders=3_000,
)


def reps_of(plan: Plan, name: str) -> int:
    """How many times `name` runs on the main store."""
    return {"dlt": plan.slow_reps, "naive": plan.naive_reps}.get(name, plan.reps)


def rotation(contenders: tuple[str, ...], rep: int) -> list[str]:
    """The contenders in a different order each repetition (alternating, so drift in the
    machine's load spreads over all of them)."""
    shift = rep % len(contenders)
    return list(contenders[shift:] + contenders[:shift])
