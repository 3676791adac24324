"""`alter-pipeline rules ...`: check a rules file, explain it on orders, apply it.

Bad input (an invalid rules file, an unknown order) exits 2, a failed run exits 1; each error
is one line (`rules check` prints one line per problem, each with its line and column).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from alter_pipeline.contract.fields import DETAIL_SHAPE_GAPS, as_utc
from alter_pipeline.rules.model import RuleSet
from alter_pipeline.rules.parse import RulesError, load_rules, parse_rules

rules_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Status rules: check, test, apply."
)
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")


def _guarded(action: Callable[[], T]) -> T:
    # The main CLI's handler (imported when called, so the two modules can import each other
    # in either order) maps errors to one line and an exit code, and honours --debug.
    from alter_pipeline.cli import guarded

    return guarded(action)


def _usage(message: str) -> Exception:
    from alter_pipeline.cli import UsageProblem

    return UsageProblem(message)


def _load_or_exit(path: Path, *, check_sources: bool = False) -> RuleSet:
    """The rules file, or every problem on stderr (FILE:LINE:COL: message) and exit code 2.
    `check_sources`: `on:` sources must be sources of inbound.yaml (when there is one)."""
    try:
        if check_sources:
            text = path.read_bytes().decode("utf-8", errors="replace") if path.is_file() else None
            if text is not None:
                known = _inbound_sources()
                return parse_rules(text, source=str(path), path=path, known_sources=known)
        return load_rules(path)
    except RulesError as error:
        for line in error.lines():
            typer.echo(line, err=True)  # never wrapped: one problem, one line
        count = len(error.problems)
        typer.echo(f"{count} problem{'s' if count != 1 else ''} in {path}", err=True)
        raise typer.Exit(2) from None


def _inbound_sources() -> tuple[str, ...] | None:
    """The source ids of $ALTER_INBOUND_FILE; None when it is absent or invalid (then the
    sources are not checked here: `alter-pipeline inbound check` reports that file)."""
    from alter_pipeline.inbound.config import InboundConfigError, configured_inbound

    try:
        found = configured_inbound()
    except InboundConfigError:
        return None
    return found.ids if found else None


def _say(line: str) -> None:
    """Print text as is: rules contain brackets Rich would read as markup."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _parse_now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        example = "2026-11-20T12:00:00Z"
        raise _usage(f"--now must be an ISO timestamp like {example}, got {text!r}") from None
    return as_utc(value)


# ---- check ----------------------------------------------------------------------------------


@rules_app.command("check")
def check(file: Path = typer.Argument(..., help="The rules file (YAML).")) -> None:
    """Validate a rules file: every problem with its line and column, else a summary."""
    ruleset = _load_or_exit(file, check_sources=True)
    for line in rules_summary(ruleset):
        _say(line)
    console.print(transitions_table(ruleset))
    enabled = len(ruleset.enabled) + len(ruleset.event_rules)
    on_events = len([r for r in ruleset.rules if r.on is not None])
    events = f", {on_events} on inbound events" if on_events else ""
    _say(
        f"{file}: {len(ruleset.rules)} rules ({enabled} enabled{events}), at most "
        f"{ruleset.max_transitions_per_run} status changes per run"
    )
    if on_events and _inbound_sources() is None:
        _say("note: no valid inbound.yaml ($ALTER_INBOUND_FILE): the `on:` sources are unchecked")


def rules_summary(ruleset: RuleSet) -> list[str]:
    """Each rule in the order it would win an order: flags, then `when` and `then`."""
    from alter_pipeline.rules.evaluate import summarize

    lines = []
    for rule in sorted(ruleset.rules, key=_live_rank):
        flags = [f"priority {rule.priority}"]
        flags += ["DISABLED"] if not rule.enabled else []
        flags += ["dry run"] if rule.dry_run else []
        flags += [f"max {rule.max_per_run}/run"] if rule.max_per_run is not None else []
        lines.append(f"{rule.id}  ({', '.join(flags)})")
        if rule.description:
            lines.append(f"    {rule.description}")
        if rule.on is not None:
            types = " or ".join(rule.on.types)
            lines.append(f"    on {rule.on.source} {types}, order id at {rule.on.path_text}")
        lines.append(f"    when {summarize(rule.when)}")
        lines.append(f"    then set_status {rule.target_status}")
    return lines


def transitions_table(ruleset: RuleSet) -> Table:
    from alter_pipeline.contract import ORDER_STATUSES

    table = Table("from", "may move to", title="allowed status moves")
    for status in ORDER_STATUSES:
        targets = ruleset.transitions.targets(status)
        table.add_row(status, ", ".join(targets) or "— (final)")
    return table


# ---- test -----------------------------------------------------------------------------------


@rules_app.command("test")
def test(
    file: Path = typer.Argument(..., help="The rules file (YAML)."),
    order: list[int] = typer.Option(
        [], "--order", help="Explain every rule on this order (repeatable)."
    ),
    live: bool = typer.Option(
        False, "--live", help="With --order: read the order from the API, not the warehouse."
    ),
    now: str | None = typer.Option(None, help="ISO time `age` and `idle` count from."),
    event: Path | None = typer.Option(
        None, "--event", help="Explain what this inbound event (its JSON body) would do."
    ),
    source: str | None = typer.Option(
        None, "--source", help="With --event: its source (default: the only one rules name)."
    ),
    event_type: str | None = typer.Option(
        None, "--type", help="With --event: its type (default: the body's `type`)."
    ),
) -> None:
    """Explain why each rule matches an order or not; without --order, what a run would do;
    with --event, what an inbound event would do."""
    ruleset = _load_or_exit(file)

    def run() -> None:
        moment = _parse_now(now)
        if event is not None:
            for line in _explain_event(ruleset, event, source, event_type, moment, live=live):
                _say(line)
        elif order:
            _explain_orders(ruleset, order, moment, live=live)
        else:
            _preview(ruleset, moment)

    _guarded(run)


def _settings() -> Any:
    from alter_pipeline.config import Settings
    from alter_pipeline.storefronts import for_storefront

    return for_storefront(Settings.from_env())


def _explain_orders(ruleset: RuleSet, order_ids: list[int], now: datetime, *, live: bool) -> None:
    from alter_pipeline.rules.evaluate import render, verdict

    facts = _live_facts(order_ids) if live else _warehouse_facts(order_ids)
    for order_id in order_ids:
        found = facts[order_id]
        o = found.order
        _say(
            f"order {order_id}: {o.get('status')}, created {render(o.get('created_at'))}, "
            f"{len(found.items)} items, {render(o.get('total_value'))} "
            f"{o.get('total_currency') or ''}".rstrip()
        )
        scheduled = [r for r in ruleset.rules if r.on is None]  # event rules need an event
        verdicts = [verdict(rule, found, now) for rule in sorted(scheduled, key=_live_rank)]
        for result in verdicts:
            for line in result.lines():
                _say("  " + line)
        movers = [v for v in verdicts if v.would_move]
        if movers:
            winner = movers[0].rule
            others = ", ".join(v.rule.id for v in movers[1:])
            beaten = f" (over {others}: lower priority or later in the file)" if others else ""
            _say(f"  → {winner.id} would set status {winner.target_status}{beaten}")
        else:
            _say("  → no rule would change this order")


def _explain_event(
    ruleset: RuleSet,
    event: Path,
    source: str | None,
    event_type: str | None,
    now: datetime,
    *,
    live: bool,
) -> list[str]:
    from alter_pipeline.rules.explain_event import EventFileError, explain_event

    def facts_of(order_id: int) -> Any:
        if live:
            return _live_facts_or_none(order_id)
        from alter_pipeline.lake.locate import open_lake
        from alter_pipeline.rules.data import NoDataError, load_facts, snapshot_connection

        try:
            con = snapshot_connection(open_lake(_settings().data_dir).current())
        except NoDataError as error:
            raise _usage(f"{error}; or use --live to read the order from the API") from None
        with con:
            return load_facts(con, [order_id]).get(order_id)

    try:
        return explain_event(ruleset, event, source, event_type, now, facts_of)
    except EventFileError as error:
        raise _usage(str(error)) from None


def _live_facts_or_none(order_id: int) -> Any:
    from alter_pipeline.api.errors import NotFoundError

    try:
        return _live_facts([order_id])[order_id]
    except NotFoundError:
        return None
    except Exception as error:
        if "does not exist" in str(error):
            return None
        raise


def _live_rank(rule: Any) -> tuple[bool, int, int]:
    return (rule.dry_run, *rule.rank)


def _warehouse_facts(order_ids: list[int]) -> dict[int, Any]:
    from alter_pipeline.lake.locate import open_lake
    from alter_pipeline.rules.data import NoDataError, load_facts, snapshot_connection

    snapshot = open_lake(_settings().data_dir).current()
    try:
        con = snapshot_connection(snapshot)
    except NoDataError as error:
        raise _usage(str(error)) from None
    with con:
        facts = load_facts(con, order_ids)
    missing = [i for i in order_ids if i not in facts]
    if missing:
        assert snapshot is not None  # snapshot_connection refuses a lake without one
        raise _usage(
            f"order {missing[0]} is not in the warehouse (snapshot {snapshot.snapshot_id}); "
            f"sync first, or use --live to read it from the API"
        )
    return facts


def _live_facts(order_ids: list[int]) -> dict[int, Any]:
    from alter_pipeline.api import AlterClient
    from alter_pipeline.rules.evaluate import OrderFacts

    conf = _settings()
    conf.require_credentials()
    with AlterClient(conf.base_url, conf.api_key, conf.api_token) as client:
        raws = client.get_orders_raw(order_ids)
    synced = _synced_if_any(order_ids)
    facts = {raw["id"]: OrderFacts.from_raw(raw, synced.get(raw["id"])) for raw in raws}
    missing = [i for i in order_ids if i not in facts]
    if missing:
        raise _usage(f"order {missing[0]} does not exist in the storefront")
    return facts


def _synced_if_any(order_ids: list[int]) -> dict[int, Any]:
    """Warehouse values of fields the API's detail shape lacks, when the lake has the order."""
    from alter_pipeline.lake.locate import open_lake
    from alter_pipeline.rules.data import NoDataError, snapshot_connection, synced_columns

    try:
        con = snapshot_connection(open_lake(_settings().data_dir).current())
    except NoDataError:
        return {}
    with con:
        return synced_columns(con, order_ids, DETAIL_SHAPE_GAPS.values())


def _preview(ruleset: RuleSet, now: datetime) -> None:
    from alter_pipeline.lake.locate import open_lake
    from alter_pipeline.rules.apply import blast_radius, make_plan
    from alter_pipeline.rules.compile import find_matches
    from alter_pipeline.rules.data import NoDataError, snapshot_connection

    snapshot = open_lake(_settings().data_dir).current()
    try:
        con = snapshot_connection(snapshot)
    except NoDataError as error:
        raise _usage(str(error)) from None
    with con:
        matches = find_matches(con, ruleset.enabled, now)
    plan = make_plan(ruleset, matches)
    per_rule = plan.per_rule(live=False)
    lost = {r.id: 0 for r in ruleset.enabled}
    for conflict in plan.conflicts:
        lost[conflict.loser.rule.id] += 1
    snapshot_id = snapshot.snapshot_id if snapshot else "?"
    _say(f"over snapshot {snapshot_id}, at {now.isoformat()}:")
    for rule in ruleset.enabled:
        ids = [c.order_id for c in plan.candidates if c.rule.id == rule.id]
        first = ", ".join(map(str, ids[:10])) + (", ..." if len(ids) > 10 else "")
        label = f"{rule.id} (dry run)" if rule.dry_run else rule.id
        _say(
            f"  {label}: matched {plan.matched[rule.id]}, would change {per_rule[rule.id]}, "
            f"lost to other rules {lost[rule.id]}" + (f"; orders {first}" if ids else "")
        )
    for reason in blast_radius(plan, ruleset):
        _say(f"a run would stop: {reason}")


# ---- apply ----------------------------------------------------------------------------------


@rules_app.command("apply")
def apply(
    dry_run: bool = typer.Option(False, "--dry-run", help="Record what would happen only."),
    max_transitions: int | None = typer.Option(
        None, "--max-transitions", min=0, help="Allow this many status changes in this run."
    ),
    rules: Path | None = typer.Option(None, "--rules", help="Default: $ALTER_RULES_FILE."),
    now: str | None = typer.Option(None, help="ISO time `age` and `idle` count from."),
) -> None:
    """Run apply_rules_job (recorded in Dagster) and print what it changed."""
    conf = _guarded(_settings)  # a malformed variable is one line and exit 2, not a traceback
    path = rules or conf.rules_file
    _load_or_exit(path)  # bad input stops here, before a run is launched

    def run() -> None:
        from alter_pipeline.cli import RunFailed
        from alter_pipeline.jobs_runner import run_job

        if conf.storefront is None:
            conf.require_credentials()  # else storefronts.yaml names the variables
        if now:
            _parse_now(now)
        config: dict[str, Any] = {"rules_file": str(path.absolute()), "dry_run": dry_run}
        config |= {"max_transitions": max_transitions} if max_transitions is not None else {}
        config |= {"now": now} if now else {}
        run_config = {"ops": {"status_transitions": {"config": config}}}
        outcome = run_job("apply_rules_job", conf, run_config, partition_key=conf.storefront)
        meta = outcome.metadata.get("status_transitions", {})
        if meta:
            _print_outcome(meta, outcome.run_id)
        if not outcome.success:
            reason = _clean(outcome.error)
            raise RunFailed(f"apply_rules_job failed: {reason} (run {outcome.run_id})")

    _guarded(run)


def _print_outcome(meta: dict[str, Any], run_id: str) -> None:
    mode = " (dry run)" if meta.get("dry_run") else ""
    _say(
        f"rules{mode}: {meta.get('applied', 0)} applied, {meta.get('would_apply', 0)} would "
        f"apply, {meta.get('skipped', 0)} skipped, {meta.get('failed', 0)} failed, "
        f"{meta.get('conflicts', 0)} conflicts (run {run_id})"
    )
    changes = str(meta.get("changes", ""))
    if changes and changes != "(none)":
        _say(changes)
    if meta.get("inbound_events"):
        _say(
            f"inbound events: {meta['inbound_events']} ({meta.get('inbound_applied', 0)} applied, "
            f"{meta.get('inbound_skipped', 0)} skipped, {meta.get('inbound_failed', 0)} failed, "
            f"{meta.get('inbound_dead', 0)} dead)"
        )
        inbound = str(meta.get("inbound_changes", ""))
        if inbound and inbound != "(none)":
            _say(inbound)
    for warning in meta.get("warnings") or []:
        _say(f"warning: {warning}")


def _clean(error: str | None) -> str:
    """Dagster wraps a Failure's text as 'Failure: dagster...Failure: <text>': keep the text."""
    text = error or "unknown error"
    marker = "Failure: "
    return text.rsplit(marker, 1)[-1].strip() if marker in text else text
