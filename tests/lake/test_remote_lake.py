"""The lake on object storage, against a real S3 server (moto in server mode, over HTTP).

Each `Lake(tmp_path / name, remote=s3_url)` is one machine's local mirror of the same lake.
"""

import json
import logging
import signal
import subprocess
import sys
import textwrap
import threading
from urllib.parse import urlsplit

import duckdb
import pytest
from lake_helpers import batch, write_snapshot

from alter_pipeline.lake import Lake, LakeConflictError, lake_at, remote
from alter_pipeline.lake.remote import attach_to_duckdb, is_remote, object_store


def ids_of(lake: Lake, table: str) -> list[int]:
    snapshot = lake.current()
    assert snapshot is not None
    return sorted(snapshot.read_table(table).column("id").to_pylist())


def stored_keys(s3_server, url: str) -> list[str]:
    """Keys under the lake's prefix, relative to it (directory markers left out)."""
    parts = urlsplit(url)
    prefix = parts.path.strip("/") + "/"
    keys = s3_server.keys(parts.netloc, prefix)
    return [k[len(prefix) :] for k in keys if not k.endswith("/")]


def stored_snapshots(s3_server, url: str) -> list[str]:
    return sorted({k.split("/")[1] for k in stored_keys(s3_server, url) if k.startswith("snap")})


def current_object(s3_server, url: str) -> dict:
    parts = urlsplit(url)
    key = f"{parts.path.strip('/')}/CURRENT"
    return json.loads(s3_server.client().get_object(Bucket=parts.netloc, Key=key)["Body"].read())


def test_a_committed_snapshot_is_listed_under_the_bucket_and_current_names_it(
    s3_server, s3_url, tmp_path
):
    snapshot_id = write_snapshot(Lake(tmp_path / "a", remote=s3_url), orders=[1, 2])
    assert stored_keys(s3_server, s3_url) == [
        "CURRENT",
        f"snapshots/{snapshot_id}/manifest.json",
        f"snapshots/{snapshot_id}/orders/part-{snapshot_id}-0000.parquet",
    ]
    assert current_object(s3_server, s3_url) == {"snapshot_id": snapshot_id}
    # Data files first, then the manifest, then the switch.
    writes = [r.path.rsplit("/", 1)[-1] for r in s3_server.requests if r.method in ("PUT", "POST")]
    assert writes.index("manifest.json") > writes.index(f"part-{snapshot_id}-0000.parquet")
    assert writes[-1] == "CURRENT"


def test_a_fresh_mirror_sees_the_same_current_snapshot_and_rows(s3_url, tmp_path):
    writer = Lake(tmp_path / "a", remote=s3_url)
    write_snapshot(writer, orders=[1], products=[7])
    latest = write_snapshot(writer, orders=[1, 2, 3])
    mirror = Lake(tmp_path / "b", remote=s3_url)
    assert mirror.current().snapshot_id == latest
    assert ids_of(mirror, "orders") == [1, 2, 3]
    assert ids_of(mirror, "products") == [7]
    assert (tmp_path / "b" / "lake").resolve() == tmp_path / "b" / "snapshots" / latest


def test_an_up_to_date_mirror_reads_only_current(s3_server, s3_url, tmp_path):
    lake = Lake(tmp_path / "a", remote=s3_url)
    write_snapshot(lake, orders=[1, 2])
    s3_server.requests.clear()
    lake.current()
    assert {r.path.rsplit("/", 1)[-1] for r in s3_server.requests} == {"CURRENT"}


def test_a_mirror_following_the_store_links_files_it_already_has(s3_server, s3_url, tmp_path):
    writer, follower = Lake(tmp_path / "a", remote=s3_url), Lake(tmp_path / "b", remote=s3_url)
    first = write_snapshot(writer, orders=[1], products=[7, 8])
    follower.current()
    write_snapshot(writer, orders=[1, 2])
    s3_server.requests.clear()
    assert ids_of(follower, "products") == [7, 8]
    fetched = [r.path for r in s3_server.requests if r.method == "GET"]
    assert not any(f"part-{first}" in path for path in fetched)


def test_a_write_that_raises_leaves_current_and_the_previous_tables_intact(
    s3_server, s3_url, tmp_path
):
    lake = Lake(tmp_path / "a", remote=s3_url)
    first = write_snapshot(lake, orders=[1, 2])
    before = stored_keys(s3_server, s3_url)
    with pytest.raises(RuntimeError, match="API went away"), lake.write() as writer:
        writer.write_table("orders", batch([1, 2, 3]))
        raise RuntimeError("API went away")
    assert stored_keys(s3_server, s3_url) == before
    assert current_object(s3_server, s3_url) == {"snapshot_id": first}
    assert ids_of(Lake(tmp_path / "b", remote=s3_url), "orders") == [1, 2]


def test_a_sync_killed_before_the_switch_leaves_current_intact_and_is_collected_later(
    s3_server, s3_url, tmp_path
):
    lake = Lake(tmp_path / "a", remote=s3_url)
    first = write_snapshot(lake, orders=[1, 2])
    # Killed at the worst moment: every object of the new snapshot uploaded, CURRENT not yet.
    script = textwrap.dedent(
        f"""
        import os, signal, pyarrow as pa
        from alter_pipeline.lake import Lake
        from alter_pipeline.lake.remote import RemoteStore
        RemoteStore.set_current = lambda self, *_, **__: os.kill(os.getpid(), signal.SIGKILL)
        with Lake({str(tmp_path / "a")!r}, remote={s3_url!r}).write() as writer:
            writer.write_table("orders", pa.table({{"id": pa.array(range(1000))}}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == -signal.SIGKILL
    orphans = [s for s in stored_snapshots(s3_server, s3_url) if s != first]
    assert len(orphans) == 1  # uploaded in full, never published
    assert current_object(s3_server, s3_url) == {"snapshot_id": first}
    assert ids_of(Lake(tmp_path / "b", remote=s3_url), "orders") == [1, 2]
    assert ids_of(lake, "orders") == [1, 2]

    latest = write_snapshot(lake, orders=[1, 2, 3])
    assert stored_snapshots(s3_server, s3_url) == [first, latest]


def test_carried_over_tables_are_copied_server_side_and_readable(s3_server, s3_url, tmp_path):
    lake = Lake(tmp_path / "a", remote=s3_url)
    first = write_snapshot(lake, orders=[1], products=[7, 8])
    second = write_snapshot(lake, orders=[1, 2])
    third = write_snapshot(lake, orders=[1, 2, 3])
    bucket, prefix = urlsplit(s3_url).netloc, urlsplit(s3_url).path.strip("/")
    products = f"products/part-{first}-0000.parquet"
    copies = {(r.copy_source, r.path) for r in s3_server.requests if r.copy_source}
    assert copies == {
        (f"{bucket}/{prefix}/snapshots/{first}/{products}",
         f"/{bucket}/{prefix}/snapshots/{second}/{products}"),
        (f"{bucket}/{prefix}/snapshots/{second}/{products}",
         f"/{bucket}/{prefix}/snapshots/{third}/{products}"),
    }  # fmt: skip
    uploads = [r.path for r in s3_server.requests if r.method == "PUT" and not r.copy_source]
    assert not any(path.endswith(f"{third}/{products}") for path in uploads)
    assert ids_of(Lake(tmp_path / "b", remote=s3_url), "products") == [7, 8]


def test_the_second_of_two_writers_racing_from_one_parent_fails_with_a_conflict(
    s3_server, s3_url, tmp_path
):
    one, two = Lake(tmp_path / "one", remote=s3_url), Lake(tmp_path / "two", remote=s3_url)
    write_snapshot(one, orders=[1])
    upload = two.remote.upload_snapshot
    winner: list[str] = []

    def upload_while_the_other_commits(*args, **kwargs):
        winner.append(write_snapshot(one, orders=[1, 2]))  # the other machine is faster
        upload(*args, **kwargs)

    two.remote.upload_snapshot = upload_while_the_other_commits
    with pytest.raises(LakeConflictError, match="Re-running is safe"), two.write() as writer:
        writer.write_table("orders", batch([1, 3]))
        loser = writer.snapshot_id
    del two.remote.upload_snapshot
    assert current_object(s3_server, s3_url) == {"snapshot_id": winner[0]}
    assert loser in stored_snapshots(s3_server, s3_url)  # uploaded, never published
    assert ids_of(two, "orders") == [1, 2]
    assert not (tmp_path / "two" / "snapshots" / loser).exists()
    write_snapshot(two, orders=[1, 2, 3])  # re-running works, and collects the loser's objects
    assert loser not in stored_snapshots(s3_server, s3_url)


RACES = 10


def race_to_switch(lakes: list[Lake], orders: list[int]) -> dict[str, str | Exception]:
    """Each lake commits a snapshot at the same time; both pass every check before either
    switches CURRENT (a barrier at the switch). What each commit returned or raised."""
    barrier = threading.Barrier(len(lakes), timeout=30)
    outcomes: dict[str, str | Exception] = {}

    def commit(name: str, lake: Lake) -> None:
        switch = lake.remote.set_current

        def switch_together(*args, **kwargs):
            barrier.wait()
            switch(*args, **kwargs)

        lake.remote.set_current = switch_together
        try:
            outcomes[name] = write_snapshot(lake, orders=orders)
        except LakeConflictError as error:
            outcomes[name] = error
        finally:
            del lake.remote.set_current

    threads = [
        threading.Thread(target=commit, args=(lake.root.name, lake), daemon=True) for lake in lakes
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def test_of_two_writers_racing_to_switch_current_exactly_one_wins_every_time(
    s3_server, s3_url, tmp_path
):
    one, two = Lake(tmp_path / "one", remote=s3_url), Lake(tmp_path / "two", remote=s3_url)
    for race in range(RACES):  # the first race creates CURRENT, the others replace it
        outcomes = race_to_switch([one, two], orders=[race])
        assert len(outcomes) == 2, "a writer neither committed nor conflicted"
        won = [o for o in outcomes.values() if isinstance(o, str)]
        lost = [o for o in outcomes.values() if isinstance(o, LakeConflictError)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert current_object(s3_server, s3_url) == {"snapshot_id": won[0]}
        loser = one if outcomes["one"] is lost[0] else two
        assert loser.current().snapshot_id == won[0]  # nothing of its own was published
        assert ids_of(loser, "orders") == [race]
    conditions = [r.condition for r in s3_server.requests if r.path.endswith("/CURRENT")]
    assert "If-None-Match: *" in conditions
    assert sum(1 for c in conditions if c and c.startswith("If-Match: ")) >= 2 * (RACES - 1)


def test_a_store_refusing_conditional_writes_is_switched_by_check_then_write_with_a_warning(
    s3_server, s3_url, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(s3_server, "refuse_conditional_writes", True)
    lake = Lake(tmp_path / "a", remote=s3_url)
    write_snapshot(lake, orders=[1])
    latest = write_snapshot(lake, orders=[1, 2])
    assert current_object(s3_server, s3_url) == {"snapshot_id": latest}
    assert ids_of(Lake(tmp_path / "b", remote=s3_url), "orders") == [1, 2]
    warnings = [r for r in caplog.records if "refuses conditional writes" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"


def test_garbage_collection_keeps_keep_snapshots_and_never_a_newer_one(s3_server, s3_url, tmp_path):
    lake = Lake(tmp_path / "a", remote=s3_url, keep=2)
    # Another writer's snapshot still being uploaded: its id sorts after the current one.
    in_progress = "99991231T235959999999Z-other0"
    parts = urlsplit(s3_url)
    key = f"{parts.path.strip('/')}/snapshots/{in_progress}/orders/part-{in_progress}-0000.parquet"
    s3_server.client().put_object(Bucket=parts.netloc, Key=key, Body=b"partial")
    ids = [write_snapshot(lake, orders=[n]) for n in range(4)]
    assert stored_snapshots(s3_server, s3_url) == [*ids[-2:], in_progress]
    assert sorted(p.name for p in (tmp_path / "a" / "snapshots").iterdir()) == ids[-2:]


def test_duckdb_reads_the_remote_current_snapshot_after_attach_to_duckdb(s3_url, tmp_path):
    lake = Lake(tmp_path / "a", remote=s3_url)
    with lake.write() as writer:
        writer.write_table("orders", batch([1, 2, 3, 4, 5]))
        writer.write_table("order_events", batch([1, 2]), partition="date=2026-11-26")
        snapshot_id = writer.snapshot_id
    con = duckdb.connect()
    assert attach_to_duckdb(con, s3_url) in ("httpfs", "fsspec")
    orders = f"{s3_url}/snapshots/{snapshot_id}/orders/**/*.parquet"
    assert con.execute(f"SELECT count(*) FROM read_parquet('{orders}')").fetchone() == (5,)
    assert lake.view_glob("orders") == orders
    events = f"read_parquet('{lake.view_glob('order_events')}', hive_partitioning = true)"
    assert con.execute(f"SELECT count(*), min(date)::VARCHAR FROM {events}").fetchone() == (
        2,
        "2026-11-26",
    )
    assert lake.attach_to_duckdb(con) in ("httpfs", "fsspec")  # attaching again is harmless


def test_the_secret_key_is_in_no_mirror_file_and_no_error_message(
    s3_server, s3_url, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    secret = s3_server.secret_key
    root = tmp_path / "a"
    lake = Lake(root, remote=s3_url)
    write_snapshot(lake, orders=[1, 2])
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        lake.attach_to_duckdb(con)
        glob = lake.view_glob("orders")
        con.execute(f"CREATE VIEW orders AS SELECT * FROM read_parquet('{glob}')")
        assert con.execute("SELECT count(*) FROM orders").fetchone() == (2,)

    messages = []
    # DuckDB quotes a statement it cannot parse, secret included.
    real_sql = remote.s3_secret_sql
    monkeypatch.setattr(remote, "s3_secret_sql", lambda s: real_sql(s).replace("s3,", "s3 x,"))
    with pytest.raises(RuntimeError) as refused:
        remote._create_s3_secret(duckdb.connect(), "s3://bucket/lake")
    messages.append(refused.value)
    with pytest.raises(ValueError) as bad_url:
        object_store(f"s3://{s3_server.secret_key[:8]}:{secret}@bucket/lake?no_such_option=1")
    messages.append(bad_url.value)
    with pytest.raises(LakeConflictError) as conflict, lake.write() as writer:
        write_snapshot(Lake(tmp_path / "b", remote=s3_url), orders=[3])
        writer.write_table("orders", batch([4]))
    messages.append(conflict.value)

    for error in messages:
        assert secret not in str(error)
        assert error.__context__ is None or secret not in str(error.__context__)
    assert secret not in caplog.text
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert secret.encode() not in path.read_bytes(), path


def test_a_file_url_lake_publishes_with_the_same_switch(tmp_path):
    store = f"file://{tmp_path / 'store'}"
    first = write_snapshot(Lake(tmp_path / "a", remote=store), orders=[1])
    assert json.loads((tmp_path / "store" / "CURRENT").read_text()) == {"snapshot_id": first}
    mirror = Lake(tmp_path / "b", remote=store)
    assert ids_of(mirror, "orders") == [1]
    assert mirror.view_glob("orders") == f"{tmp_path}/store/snapshots/{first}/orders/**/*.parquet"


def test_a_real_sync_writes_an_s3_lake_that_a_fresh_mirror_syncs_incrementally(
    emulator, s3_url, tmp_path
):
    from alter_pipeline.api import AlterClient
    from alter_pipeline.events import schema as ev
    from alter_pipeline.sync import run_sync

    with AlterClient(emulator.base_url, emulator.key, emulator.token) as client:
        first = run_sync(client, Lake(tmp_path / "one", remote=s3_url), now=emulator.store.now())
        order_id = emulator.store.order_ids(["shopping_cart"])[0]
        emulator.store.set_status(order_id, "cancelled")
        other_machine = Lake(tmp_path / "two", remote=s3_url)
        second = run_sync(client, other_machine, now=emulator.store.now())
    assert (first.mode, second.mode) == ("full", "incremental")
    assert second.events == {ev.ORDER_STATUS_CHANGED: 1}
    orders = other_machine.current().read_table("orders").to_pylist()
    assert len(orders) == first.orders.rows
    assert {o["order_id"]: o["status"] for o in orders}[order_id] == "cancelled"


@pytest.mark.parametrize(
    ("location", "remote"),
    [
        ("s3://bucket/lake", True),
        ("gs://bucket/lake", True),
        ("file:///srv/lake", True),
        ("/srv/data", False),
        ("data", False),
        ("C:\\data", False),
    ],
)
def test_is_remote_tells_an_object_store_url_from_a_directory(location, remote):
    assert is_remote(location) is remote


def test_a_storefront_root_is_published_at_the_same_place_under_the_url(tmp_path):
    root = tmp_path / "storefront_id=7"
    lake = lake_at(tmp_path, "s3://bucket/lake?region=eu-west-1", root)
    assert (lake.root, lake.remote.url) == (
        root,
        "s3://bucket/lake/storefront_id=7?region=eu-west-1",
    )
    assert lake_at(tmp_path, "s3://bucket/lake").remote.url == "s3://bucket/lake"
    assert lake_at(tmp_path, None, root).remote is None


def test_the_duckdb_s3_secret_is_temporary_and_built_from_the_aws_variables(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "it's-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.internal:9000")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    sql = remote.s3_secret_sql("s3://bucket/lake")
    assert sql.startswith("CREATE OR REPLACE TEMPORARY SECRET")
    assert "SECRET 'it''s-secret'" in sql
    assert "ENDPOINT 'minio.internal:9000'" in sql
    assert "URL_STYLE 'path'" in sql and "USE_SSL false" in sql
    assert "SESSION_TOKEN" not in sql
