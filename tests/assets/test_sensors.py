"""Sensors over a sequence of real syncs: no event skipped, none requested twice."""

import dagster as dg

from alter_pipeline.api import AlterClient
from alter_pipeline.lake import Lake
from alter_pipeline.resources import LakeResource
from alter_pipeline.sensors import build_events_sensor
from alter_pipeline.sync import run_sync

sensor = build_events_sensor("test_events_sensor", "deliver_webhooks_job", "test")


def tick(data_dir, cursor):
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=dg.DagsterInstance.ephemeral(),
        resources={"lake": LakeResource(data_dir=str(data_dir))},
    )
    return sensor.evaluate_tick(context)


def test_events_sensor_requests_one_run_per_batch_and_advances_its_cursor(emulator, tmp_path):
    lake = Lake(tmp_path)
    with AlterClient(emulator.base_url, emulator.key, emulator.token) as client:
        run_sync(client, lake, now=emulator.store.now())
        assert tick(tmp_path, None).run_requests == []

        first = emulator.store.create_order()["id"]
        run_sync(client, lake, now=emulator.store.now())
        result = tick(tmp_path, None)
        assert [r.run_key for r in result.run_requests] == ["deliver_webhooks_job:1-1"]
        assert result.cursor == "1"

        assert tick(tmp_path, result.cursor).run_requests == []  # nothing new: skipped

        emulator.store.delete_order(first)
        emulator.store.create_order()
        run_sync(client, lake, now=emulator.store.now())
        later = tick(tmp_path, result.cursor)
        assert [r.run_key for r in later.run_requests] == ["deliver_webhooks_job:2-3"]
        assert later.cursor == "3"


def test_a_lost_cursor_update_re_requests_the_same_run_key(emulator, tmp_path):
    with AlterClient(emulator.base_url, emulator.key, emulator.token) as client:
        run_sync(client, Lake(tmp_path), now=emulator.store.now())
        emulator.store.create_order()
        run_sync(client, Lake(tmp_path), now=emulator.store.now())
    first, retried = tick(tmp_path, None), tick(tmp_path, None)  # the first tick's cursor was lost
    assert first.run_requests[0].run_key == retried.run_requests[0].run_key
