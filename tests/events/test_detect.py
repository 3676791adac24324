"""Change detection across the upgrade that keeps `measureSize: {}` as '{}' (it was NULL)."""

import json
import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alter_pipeline.events import schema as ev
from alter_pipeline.lake import Lake
from alter_pipeline.sync import EMPTY_MEASURES_KEPT


def store_empty_measures_as_null(lake_dir, *, keep_flag: bool = False) -> int:
    """Rewrite the current snapshot as a version that stored `{}` as NULL wrote it (without
    the meta flag unless `keep_flag`); returns how many items it changed."""
    snapshot = Lake(lake_dir).current()
    changed = 0
    for path in sorted(snapshot.table_dir("order_items").rglob("*.parquet")):
        table = pq.read_table(path)
        measures = table.column("measure_size")
        empty = pc.fill_null(pc.equal(measures, "{}"), False)
        changed += pc.sum(empty).as_py() or 0
        nulled = pc.if_else(empty, pa.scalar(None, pa.string()), measures)
        index = table.schema.get_field_index("measure_size")
        scratch = path.with_suffix(".tmp")
        pq.write_table(table.set_column(index, "measure_size", nulled), scratch)
        os.replace(scratch, path)  # a new file: the next snapshot may link the old one
    manifest_path = snapshot.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if not keep_flag:
        manifest["meta"].pop(EMPTY_MEASURES_KEPT)
    manifest_path.write_text(json.dumps(manifest))
    return changed


def test_syncs_after_the_upgrade_report_no_change_for_empty_measures(emulator, syncer_factory):
    syncer = syncer_factory(emulator)
    syncer.sync()
    assert store_empty_measures_as_null(syncer.lake_dir) > 0
    incremental = syncer.sync()
    assert incremental.mode == "incremental"
    assert (incremental.changed_orders, incremental.events) == (0, {})
    assert not Lake(syncer.lake_dir).current().meta(EMPTY_MEASURES_KEPT)
    reconcile = syncer.sync(full=True)
    assert (reconcile.changed_orders, reconcile.events) == (0, {})
    assert Lake(syncer.lake_dir).current().meta(EMPTY_MEASURES_KEPT) is True


def test_a_measure_size_going_from_null_to_empty_is_an_edit(emulator, syncer_factory):
    syncer = syncer_factory(emulator)
    syncer.sync()
    changed = store_empty_measures_as_null(syncer.lake_dir, keep_flag=True)
    report = syncer.sync(full=True)
    assert report.changed_orders > 0
    assert report.events == {ev.ORDER_ITEMS_CHANGED: report.changed_orders}
    assert changed >= report.changed_orders
