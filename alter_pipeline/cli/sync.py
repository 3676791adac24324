"""`alter-pipeline sync` and `alter-pipeline analytics`: recorded Dagster runs, one per
storefront when storefronts.yaml lists several, with a progress bar on a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import Progress

from alter_pipeline.cli.base import RunFailed, UsageProblem, console, guarded, settings
from alter_pipeline.config import Settings
from alter_pipeline.storefronts import configured

if TYPE_CHECKING:
    from alter_pipeline.jobs_runner import JobOutcome
    from alter_pipeline.sync import ProgressCallback


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
    progress: ProgressCallback | None = None,
) -> JobOutcome:
    # 1.1-1.8 s to import (Dagster; python -X importtime): only the verbs that run a job pay it
    from alter_pipeline.jobs_runner import run_job

    outcome = run_job(name, conf, run_config, partition_key=partition, progress=progress)
    if not outcome.success and (outcome.error or "").startswith("DagsterExecutionInterrupted"):
        raise KeyboardInterrupt  # Dagster turned Ctrl-C into a failed step
    if not outcome.success:
        raise RunFailed(f"{name} failed: {outcome.error} (run {outcome.run_id})")
    return outcome


def _run_with_progress(
    name: str, conf: Settings, run_config: dict[str, Any], partition: str | None = None
) -> JobOutcome:
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

        return _run_job(name, conf, run_config, partition, progress=show)
