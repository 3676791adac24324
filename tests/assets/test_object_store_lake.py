"""The sync job with ALTER_DATA_DIR on a real local S3 server (moto): the lake lives in the
bucket, the warehouse reads it there, and another machine (a fresh mirror) sees the same."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.fs as pafs

from alter_pipeline.assets.checks import asset_checks
from alter_pipeline.assets.sync import build_alter_sync, build_warehouse_views
from alter_pipeline.definitions import build_definitions
from alter_pipeline.lake.remote import object_store
from alter_pipeline.resources import AlterApiResource, LakeResource
from alter_pipeline.storefronts import parse_storefronts
from alter_pipeline.warehouse import connect

alter_sync, warehouse_views = build_alter_sync(), build_warehouse_views()


def sync(emulator: Any, s3_url: str, **config: Any) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [alter_sync, warehouse_views, *asset_checks],
        resources={
            "alter_api": AlterApiResource(
                base_url=emulator.base_url, api_key=emulator.key, api_token=emulator.token
            ),
            "lake": LakeResource(data_dir=s3_url),
        },
        run_config={"ops": {"alter_sync": {"config": config}}},
    )


def bucket_keys(s3_url: str) -> list[str]:
    store, base = object_store(s3_url)
    infos = store.get_file_info(pafs.FileSelector(base, recursive=True))
    return [i.path[len(base) + 1 :] for i in infos if i.type == pafs.FileType.File]


def use_mirror(monkeypatch, s3_url: str, mirror: Path) -> None:
    monkeypatch.setenv("ALTER_DATA_DIR", s3_url)
    monkeypatch.setenv("ALTER_CACHE_DIR", str(mirror))


def test_a_sync_job_publishes_its_snapshot_to_the_bucket(emulator, s3_url, tmp_path, monkeypatch):
    use_mirror(monkeypatch, s3_url, tmp_path / "mirror")
    assert sync(emulator, s3_url).success
    keys = bucket_keys(s3_url)
    assert "CURRENT" in keys
    assert any(k.startswith("snapshots/") and "/orders/" in k for k in keys)


def test_the_warehouse_reads_the_bucket_from_a_fresh_machine(
    emulator, s3_url, tmp_path, monkeypatch
):
    use_mirror(monkeypatch, s3_url, tmp_path / "syncer")
    assert sync(emulator, s3_url).success
    use_mirror(monkeypatch, s3_url, tmp_path / "analyst")  # nothing mirrored here
    with connect(tmp_path / "analyst") as con:
        orders = con.execute("SELECT count(*), min(storefront_id) FROM orders").fetchone()
    assert orders == (emulator.store.order_count(), 12)
    assert not (tmp_path / "analyst" / "lake").exists()  # read in the bucket, not copied


def test_an_incremental_sync_on_another_machine_continues_from_the_bucket(
    emulator, s3_url, tmp_path, monkeypatch
):
    use_mirror(monkeypatch, s3_url, tmp_path / "pod-1")
    assert sync(emulator, s3_url).success
    emulator.store.create_order()
    use_mirror(monkeypatch, s3_url, tmp_path / "pod-2")
    result = sync(emulator, s3_url)
    assert result.success
    orders = next(
        m.materialization.metadata
        for m in result.get_asset_materialization_events()
        if m.asset_key.path == ["orders"]
    )
    assert orders["mode"].value == "incremental"
    assert orders["orders_new"].value == 1
    with connect(tmp_path / "pod-2") as con:
        count = con.execute("SELECT count(*) FROM orders").fetchone()[0]
    assert count == emulator.store.order_count()


def test_no_secret_key_reaches_the_mirror_or_the_bucket(emulator, s3_url, tmp_path, monkeypatch):
    use_mirror(monkeypatch, s3_url, tmp_path / "mirror")
    assert sync(emulator, s3_url).success
    with connect(tmp_path / "mirror") as con:
        con.execute("SELECT count(*) FROM order_items").fetchone()
    secret = os.environ["AWS_SECRET_ACCESS_KEY"].encode()
    store, base = object_store(s3_url)
    for key in bucket_keys(s3_url):
        with store.open_input_stream(f"{base}/{key}") as stream:
            assert secret not in stream.read()
    for file in (tmp_path / "mirror").rglob("*"):
        if file.is_file():
            assert secret not in file.read_bytes(), file


def test_two_storefronts_in_one_bucket_are_found_and_queried_together(
    emulator_factory, s3_url, tmp_path, monkeypatch
):
    entries = []
    for name, storefront_id, orders in (("north", 21, 12), ("south", 22, 8)):
        shop = emulator_factory(orders=orders, storefront_id=storefront_id, key=name, token=name)
        monkeypatch.setenv(f"{name.upper()}_KEY", name)
        monkeypatch.setenv(f"{name.upper()}_TOKEN", name)
        entries.append(
            {
                "name": name,
                "base_url": shop.base_url,
                "api_key_env": f"{name.upper()}_KEY",
                "api_token_env": f"{name.upper()}_TOKEN",
            }
        )
    storefronts = parse_storefronts({"storefronts": entries})
    use_mirror(monkeypatch, s3_url, tmp_path / "pod")
    resources = {
        "alter_api": AlterApiResource(api_key="", api_token=""),
        "lake": LakeResource(data_dir=s3_url),
    }
    path = tmp_path / "storefronts.yaml"
    path.write_text(json.dumps({"storefronts": entries}))  # JSON is YAML
    monkeypatch.setenv("ALTER_STOREFRONTS_FILE", str(path))
    job = build_definitions(storefronts, resources).resolve_job_def("sync_job")
    for name in storefronts.names:
        assert job.execute_in_process(partition_key=name).success
    assert {k.split("/")[0] for k in bucket_keys(s3_url)} == {
        "storefront_id=21",
        "storefront_id=22",
    }
    use_mirror(monkeypatch, s3_url, tmp_path / "analyst")
    with connect(tmp_path / "analyst") as con:
        counts = con.execute("SELECT storefront_id, count(*) FROM orders GROUP BY 1 ORDER BY 1")
        assert counts.fetchall() == [(21, 12), (22, 8)]
    # A sensor daemon on a machine that never synced finds both lakes in the bucket.
    use_mirror(monkeypatch, s3_url, tmp_path / "daemon")
    defs = build_definitions(storefronts, resources)
    sensor = defs.resolve_sensor_def("order_events_sensor")
    context = dg.build_sensor_context(
        cursor=None,
        resources={"lake": LakeResource(data_dir=s3_url)},
        definitions=defs,
    )
    result = sensor(context)
    reason = result.skip_message if hasattr(result, "skip_message") else str(result)
    assert "not synced" not in reason
    assert "north: no new order events" in reason and "south: no new order events" in reason
