"""`make demo`: the whole pipeline against the built-in emulator, then a short summary.

Starts an emulator in this process, syncs through Dagster (runs recorded in $DAGSTER_HOME),
builds the analytics tables, lets shoppers change some orders, syncs again to detect the changes,
delivers them as signed webhooks to a local receiver and applies the sample rules. Then the
other direction: a signed Stripe-style `checkout.session.completed` for a cart reaches the
inbound server, the inbound sensor's run makes the order `paid`, and that change leaves as an
outbound webhook.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from alter_pipeline.config import Settings

if TYPE_CHECKING:  # annotations only: jobs_runner loads the definitions, when a job runs
    from alter_pipeline.jobs_runner import JobOutcome

console = Console()
DEMO_ORDERS = 3000
DEMO_MARKER = ".alter-demo"
SECRET_ENV = "SHOP_WEBHOOK_SECRET"
STRIPE_SECRET_ENV = "STRIPE_WEBHOOK_SECRET"
SAMPLE_RULES = Path(__file__).resolve().parent.parent / "rules.example.yaml"


def prepare_data_dir(data_dir: Path) -> None:
    """Start from an empty lake, but never wipe a lake the demo did not create."""
    data_dir.mkdir(parents=True, exist_ok=True)
    marker = data_dir / DEMO_MARKER
    has_lake = (data_dir / "lake").exists()
    if has_lake and not marker.exists():
        sys.exit(
            f"{data_dir} holds a lake the demo did not create; "
            "set ALTER_DATA_DIR to another folder to run the demo."
        )
    for name in (
        "lake",
        "snapshots",
        "warehouse.duckdb",
        ".warehouse-views.json",
        "webhooks",
        "rules",
        "inbound",
    ):
        path = data_dir / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
    marker.write_text("created by make demo\n")


def run(
    step: str, job: str, settings: Settings, run_config: dict[str, Any] | None = None
) -> JobOutcome:
    from alter_pipeline.jobs_runner import run_job

    with console.status(step):
        outcome = run_job(job, settings, run_config)
    if not outcome.success:
        console.print(f"[red]{job} failed:[/red] {outcome.error}")
        sys.exit(1)
    console.print(f"[green]✓[/green] {step} (run {outcome.run_id[:8]})")
    return outcome


def shoppers_change_orders(store: Any) -> dict[str, int]:
    """What a busy hour looks like: checkouts, edited quantities, new carts, a deleted cart."""
    carts = store.order_ids(["shopping_cart"])
    editable = store.order_ids(["editable"])
    for order_id in carts[-5:]:
        store.set_status(order_id, "paid")
    for order_id in editable[-3:]:
        first_item = store.get_order(order_id)["productItems"][0]["id"]
        store.set_quantity(order_id, first_item, 4)
    for _ in range(4):
        store.create_order()
    store.delete_order(carts[-6])
    return {"checkouts": 5, "quantity edits": 3, "new carts": 4, "deleted carts": 1}


def print_summary(settings: Settings) -> None:
    from alter_pipeline.warehouse import connect

    with connect(settings.data_dir) as con:
        _table(
            con,
            "Tables and row counts",
            " UNION ALL ".join(
                f"SELECT '{t}' AS table, count(*) AS rows FROM {t}"
                for t in ("orders", "order_items", "products", "order_events", "orders_history")
            ),
        )
        _table(
            con,
            "Revenue by day (last 7 days with sales)",
            "SELECT day, currency, orders, revenue FROM revenue_daily ORDER BY day DESC LIMIT 7",
        )
        _table(
            con,
            "Top products",
            "SELECT product_name, quantity, revenue, currency FROM top_products LIMIT 5",
        )
        _table(
            con,
            "Order events",
            "SELECT event_type, count(*) AS events FROM order_events GROUP BY 1 ORDER BY 1",
        )
        _table(
            con,
            "Status transitions by the rules (audit)",
            "SELECT rule_id, from_status, to_status, outcome, dry_run, count(*) AS orders "
            "FROM status_transitions GROUP BY ALL ORDER BY orders DESC",
        )


def _table(con: Any, title: str, sql: str) -> None:
    try:
        cursor = con.execute(sql)
    except Exception:  # a table a later stage did not produce: leave it out of the summary
        return
    table = Table(*[d[0] for d in cursor.description], title=title, title_justify="left")
    for row in cursor.fetchall():
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


NEXT_STEPS = """
Next, try:
  .venv/bin/alter-pipeline query "select status, count(*) from orders group by 1"
  .venv/bin/alter-pipeline query "select * from abandoned_carts limit 5" --format csv
  .venv/bin/python examples/dataframes.py   # the warehouse as pandas DataFrames
  open data/analytics/report.html          # the charts (alter-pipeline report redraws them)
  make ui                      # Dagster UI on http://127.0.0.1:3000, emulator in live mode
  .venv/bin/alter-pipeline emulator --orders 5000   # serve the emulator for your own code
Read README.md (configuration, staleness bounds, rules, webhooks) and docs/architecture.md.
"""


def write_demo_config(data_dir: Path, receiver_url: str) -> None:
    """A webhooks file pointing at the local receiver and the sample rules, for this demo."""
    demo_dir = data_dir / "demo"
    demo_dir.mkdir(exist_ok=True)
    webhooks = demo_dir / "webhooks.yaml"
    webhooks.write_text(
        "endpoints:\n"
        "  - id: shop-backend\n"
        f"    url: {receiver_url}/hooks/alter\n"
        '    events: ["order.*"]\n'
        f"    secret_env: {SECRET_ENV}\n"
    )
    os.environ["ALTER_WEBHOOKS_FILE"] = str(webhooks)
    os.environ["ALTER_RULES_FILE"] = str(SAMPLE_RULES)


def main() -> None:
    from alter_pipeline.emulator import EmulatorConfig, run_emulator
    from alter_pipeline.webhooks.receiver import run_receiver

    settings = Settings.from_env()
    prepare_data_dir(settings.data_dir)
    secret = os.environ.setdefault(SECRET_ENV, new_secret())
    config = EmulatorConfig(orders=DEMO_ORDERS, products=24, seed=7, now=datetime.now(UTC))
    deliveries: list[str] = []
    with run_emulator(config) as emulator, run_receiver(secret, on_line=deliveries.append) as hooks:
        console.print(f"Emulator serving {DEMO_ORDERS} orders at {emulator.base_url}")
        console.print(f"Webhook receiver (verifies signatures) at {hooks.url}")
        os.environ.update(
            ALTER_API_BASE_URL=emulator.base_url,
            ALTER_API_KEY=emulator.key,
            ALTER_API_TOKEN=emulator.token,
        )
        write_demo_config(settings.data_dir, hooks.url)
        settings = Settings.from_env()
        run("first sync: every order, item and product", "sync_job", settings, _sync(full=True))
        run("analytics tables", "analytics_job", settings)
        changes = shoppers_change_orders(emulator.store)
        console.print(
            "Shoppers changed orders: " + ", ".join(f"{n} {k}" for k, n in changes.items())
        )
        outcome = run(
            "incremental sync: detect the changes", "sync_job", settings, _sync(full=False)
        )
        console.print(f"Events detected: {outcome.metadata.get('orders', {}).get('events', {})}")
        run("webhooks: deliver the events", "deliver_webhooks_job", settings)
        rules = run("rules: cancel stale carts (rules.example.yaml)", "apply_rules_job", settings)
        applied = rules.metadata.get("status_transitions", {}).get("applied", 0)
        console.print(f"Rules applied {applied} status changes; their events follow as webhooks")
        run("webhooks: deliver the rules' status changes", "deliver_webhooks_job", settings)
        inbound_loop(emulator.store, settings, hooks, deliveries)
        hooks.wait_for(len(deliveries), timeout_s=2)
    console.print(f"The receiver verified {len(deliveries)} signed webhooks, for example:")
    for line in deliveries[:5]:
        console.print(f"  {line.splitlines()[0][:110]}", highlight=False, soft_wrap=True)
    print_summary(settings)
    console.print(NEXT_STEPS, soft_wrap=True, highlight=False)


def inbound_loop(store: Any, settings: Settings, hooks: Any, deliveries: list[str]) -> None:
    """Stripe says a checkout was paid: verified and stored by the inbound server, applied by
    the run inbound_events_sensor requests, and sent on as an `order.status_changed` webhook."""
    import httpx

    from alter_pipeline.inbound.config import load_inbound
    from alter_pipeline.inbound.server import InboundApp, open_inboxes, run_inbound_server
    from alter_pipeline.inbound.verify import stripe_signature_header

    secret = os.environ.setdefault(STRIPE_SECRET_ENV, new_secret())
    path = settings.data_dir / "demo" / "inbound.yaml"
    path.write_text(
        "sources:\n"
        "  - {id: stripe, path: /hooks/stripe, kind: stripe, "
        f"secret_env: {STRIPE_SECRET_ENV}}}\n"
    )
    os.environ["ALTER_INBOUND_FILE"] = str(path)
    config = load_inbound(path)
    order_id = store.order_ids(["shopping_cart"])[0]
    body = checkout_completed(order_id)
    header = stripe_signature_header(secret, body, int(datetime.now(UTC).timestamp()))
    app = InboundApp(config, open_inboxes(config, settings))
    with run_inbound_server(app) as server:
        url = f"{server.url}/hooks/stripe"
        answer = httpx.post(url, content=body, headers={"Stripe-Signature": header}, timeout=10)
        forged = httpx.post(url, content=body, headers={"Stripe-Signature": "t=1,v1=00"})
    console.print(
        f"Inbound: Stripe-style checkout.session.completed for cart {order_id} → "
        f"{answer.status_code} (stored in the inbox); a forged one → {forged.status_code}"
    )
    request = _inbound_sensor_request(settings)
    run("rules: apply the inbound event (the inbound sensor's run)", "apply_rules_job", settings,
        request.run_config)  # fmt: skip
    status = "paid" if order_id in store.order_ids(["paid"]) else "not paid"
    console.print(f"Order {order_id} is now {status} in the store")
    before = len(deliveries)
    run("webhooks: deliver its order.status_changed", "deliver_webhooks_job", settings)
    hooks.wait_for(before + 1, timeout_s=5)
    for line in deliveries[before:]:
        if f"order={order_id} " in line:
            console.print(f"  outbound: {line[:180]}", highlight=False, soft_wrap=True)


def checkout_completed(order_id: int) -> bytes:
    """A Stripe-shaped `checkout.session.completed` naming the Alter order in its metadata."""
    event = {
        "id": f"evt_demo_{order_id}_{secrets.token_hex(4)}",
        "object": "event",
        "type": "checkout.session.completed",
        "data": {
            "object": {
                "object": "checkout.session",
                "payment_status": "paid",
                "metadata": {"alter_order_id": str(order_id)},
            }
        },
    }
    return json.dumps(event, separators=(",", ":")).encode()


def _inbound_sensor_request(settings: Settings) -> Any:
    import dagster as dg

    from alter_pipeline.assets.inbound import make_inbound_sensor
    from alter_pipeline.resources import LakeResource

    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        resources={"lake": LakeResource(data_dir=str(settings.data_dir))},
    )
    result = make_inbound_sensor().evaluate_tick(context)
    (request,) = result.run_requests or []
    return request


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _sync(*, full: bool) -> dict[str, Any]:
    return {"ops": {"alter_sync": {"config": {"full": full}}}}


if __name__ == "__main__":
    main()
