"""Several storefronts in one deployment: two emulators with different data and keys, each a
partition of every asset, synced side by side into one warehouse."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from alter_pipeline.definitions import build_definitions
from alter_pipeline.resources import AlterApiResource, LakeResource
from alter_pipeline.storefronts import load_storefronts, root_of
from alter_pipeline.warehouse import connect
from alter_pipeline.webhooks.receiver import run_receiver

RULES = """
rules:
  - id: cancel-berlin-carts
    storefronts: [berlin]
    when: {status: shopping_cart}
    then: {set_status: cancelled}
"""


@pytest.fixture
def two_storefronts(emulator_factory, tmp_path, monkeypatch) -> dict[str, Any]:
    """Berlin (storefront 12, 40 orders) and Paris (storefront 77, 25 orders), each with its
    own key and token, listed in a storefronts.yaml the way an agency would write it."""
    berlin = emulator_factory(orders=40, seed=3, storefront_id=12, key="kb", token="tb")
    paris = emulator_factory(orders=25, seed=9, storefront_id=77, key="kp", token="tp")
    lines = ["storefronts:"]
    for name, emulator in (("berlin", berlin), ("paris", paris)):
        upper = name.upper()
        lines += [
            f"  - name: {name}",
            f"    base_url: {emulator.base_url}",
            f"    api_key_env: {upper}_KEY",
            f"    api_token_env: {upper}_TOKEN",
        ]
        monkeypatch.setenv(f"{upper}_KEY", emulator.key)
        monkeypatch.setenv(f"{upper}_TOKEN", emulator.token)
    path = tmp_path / "storefronts.yaml"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("ALTER_STOREFRONTS_FILE", str(path))
    data_dir = tmp_path / "data"
    resources = {
        # The single-storefront credentials stay unset: partitions never use them.
        "alter_api": AlterApiResource(api_key="unused", api_token="unused", max_attempts=2),
        "lake": LakeResource(data_dir=str(data_dir)),
    }
    defs = build_definitions(load_storefronts(path), resources=resources)
    return {"berlin": berlin, "paris": paris, "defs": defs, "data_dir": data_dir}


def run_job(setup: dict[str, Any], job: str, partition: str, **kwargs: Any):
    return (
        setup["defs"]
        .resolve_job_def(job)
        .execute_in_process(
            partition_key=partition,
            instance=setup.setdefault("instance", dg.DagsterInstance.ephemeral()),
            raise_on_error=False,
            **kwargs,
        )
    )


def test_every_lake_asset_is_partitioned_by_storefront_name(two_storefronts):
    defs = two_storefronts["defs"]
    for key in ("orders", "order_items", "products", "status_transitions"):
        spec = defs.resolve_assets_def(key).specs_by_key[dg.AssetKey(key)]
        assert spec.partitions_def.get_partition_keys() == ["berlin", "paris"]


def test_dbt_models_span_every_storefront_in_one_unpartitioned_asset(two_storefronts):
    spec = two_storefronts["defs"].resolve_assets_def("revenue_daily").specs_by_key
    assert spec[dg.AssetKey("revenue_daily")].partitions_def is None


def test_two_storefronts_sync_into_one_warehouse_split_by_storefront_id(two_storefronts):
    for name in ("berlin", "paris"):
        assert run_job(two_storefronts, "sync_job", name).success
    data_dir = two_storefronts["data_dir"]
    with connect(data_dir) as con:
        counts = dict(
            con.execute("SELECT storefront_id, count(*) FROM orders GROUP BY 1").fetchall()
        )
        paris_items = con.execute(
            "SELECT count(*) FROM order_items WHERE storefront_id = 77"
        ).fetchone()[0]
    assert counts == {12: 40, 77: 25}
    assert paris_items == sum(
        len(o["productItems"]) for o in two_storefronts["paris"].store.orders_list()
    )
    assert root_of(data_dir, "berlin") == (data_dir / "storefront_id=12").resolve()
    assert root_of(data_dir, "paris") == (data_dir / "storefront_id=77").resolve()


def test_a_revoked_key_fails_its_partition_only_and_says_why(two_storefronts, monkeypatch):
    monkeypatch.setenv("PARIS_KEY", "revoked")
    paris = run_job(two_storefronts, "sync_job", "paris")
    berlin = run_job(two_storefronts, "sync_job", "berlin")
    assert berlin.success and not paris.success
    failure = next(e for e in paris.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "storefront paris" in message and "401" in message
    assert "revoked" not in message  # the rejected key is never echoed
    assert root_of(two_storefronts["data_dir"], "paris") is None


def test_a_missing_credential_variable_is_named_in_the_failure(two_storefronts, monkeypatch):
    monkeypatch.delenv("BERLIN_TOKEN")
    result = run_job(two_storefronts, "sync_job", "berlin")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "BERLIN_TOKEN" in failure.step_failure_data.error.message


def test_rules_scoped_to_one_storefront_change_only_its_orders(
    two_storefronts, tmp_path, monkeypatch
):
    for name in ("berlin", "paris"):
        assert run_job(two_storefronts, "sync_job", name).success
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    monkeypatch.setenv("ALTER_RULES_FILE", str(rules))
    berlin, paris = two_storefronts["berlin"], two_storefronts["paris"]
    carts_before = len(paris.store.order_ids(["shopping_cart"]))
    for name in ("berlin", "paris"):
        assert run_job(two_storefronts, "apply_rules_job", name).success
    assert berlin.store.order_ids(["shopping_cart"]) == []
    assert len(paris.store.order_ids(["shopping_cart"])) == carts_before > 0


def test_sensors_request_one_run_per_storefront_with_new_events(two_storefronts):
    for name in ("berlin", "paris"):
        assert run_job(two_storefronts, "sync_job", name).success
    defs = two_storefronts["defs"]
    sensor = defs.resolve_sensor_def("order_events_sensor")
    context = dg.build_sensor_context(
        cursor=json.dumps({"berlin": "0", "paris": "0"}),
        resources={"lake": LakeResource(data_dir=str(two_storefronts["data_dir"]))},
        definitions=defs,
    )
    # A first sync emits no events: move one order in Paris and sync again.
    paris = two_storefronts["paris"]
    paris.store.set_status(paris.store.order_ids(["shopping_cart"])[0], "cancelled")
    full = {"ops": {"alter_sync": {"config": {"full": True}}}}
    assert run_job(two_storefronts, "sync_job", "paris", run_config=full).success
    result = sensor(context)
    assert [r.partition_key for r in result.run_requests] == ["paris"]
    assert result.run_requests[0].run_key == "deliver_webhooks_job:paris:1-1"
    assert json.loads(result.cursor) == {"berlin": "0", "paris": "1"}


def test_the_schedule_requests_a_run_for_every_storefront(two_storefronts):
    defs = two_storefronts["defs"]
    schedule = defs.resolve_schedule_def("sync_schedule")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 27, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert sorted(r.partition_key for r in requests) == ["berlin", "paris"]


def test_a_key_pointed_at_another_storefront_gets_that_storefronts_lake(
    two_storefronts, monkeypatch
):
    assert run_job(two_storefronts, "sync_job", "berlin").success
    paris = two_storefronts["paris"]
    # berlin's entry now carries Paris's credentials and URL: its rows go to storefront 77's
    # lake, never into 12's.
    path = Path(two_storefronts["defs"].resources["lake"].data_dir).parent / "storefronts.yaml"
    path.write_text(path.read_text().replace("BERLIN_KEY", "PARIS_KEY"))
    monkeypatch.setenv("BERLIN_TOKEN", paris.token)
    text = path.read_text()
    berlin_url = two_storefronts["berlin"].base_url
    path.write_text(text.replace(berlin_url, paris.base_url, 1))
    assert run_job(two_storefronts, "sync_job", "berlin").success
    data_dir = two_storefronts["data_dir"]
    assert root_of(data_dir, "berlin") == (data_dir / "storefront_id=77").resolve()
    files = (data_dir / "storefront_id=12" / "lake" / "orders").as_posix() + "/*.parquet"
    with duckdb.connect() as con:
        ids = con.execute(f"SELECT DISTINCT storefront_id FROM read_parquet('{files}')").fetchall()
    assert ids == [(12,)]


def test_a_webhook_endpoint_scoped_to_one_storefront_gets_only_its_events(
    two_storefronts, tmp_path, monkeypatch
):
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("PARIS_HOOK_SECRET", secret)
    full = {"ops": {"alter_sync": {"config": {"full": True, "emit_initial": True}}}}
    for name in ("berlin", "paris"):
        assert run_job(two_storefronts, "sync_job", name, run_config=full).success
    with run_receiver(secret) as receiver:
        hooks = tmp_path / "webhooks.yaml"
        hooks.write_text(
            "endpoints:\n"
            f"  - {{id: paris-shop, url: '{receiver.url}', events: ['order.*'],"
            " secret_env: PARIS_HOOK_SECRET, storefront: paris}\n"
        )
        monkeypatch.setenv("ALTER_WEBHOOKS_FILE", str(hooks))
        for name in ("berlin", "paris"):
            assert run_job(two_storefronts, "deliver_webhooks_job", name).success
    storefronts = {json.loads(r.body)["data"]["storefront_id"] for r in receiver.received}
    assert len(receiver.received) == 25 and storefronts == {77}
