"""Which `Lake` a local root stands for, under the deployment's settings.

With ALTER_DATA_DIR=s3://bucket/prefix, every lake root under the local working directory
(the deployment's, or a storefront's `storefront_id=<id>/`) mirrors the same relative place
under the URL (`lake_at`), so sensors, the rules CLI and the webhook intake on any machine
see the object store's current snapshot, not a stale local one. `for_storefront` gives the
settings of the storefront a command works on (its lake root, published or local); it lives
here, above storefronts.py, so that module never imports the lake back.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pyarrow import fs as pafs

from alter_pipeline.config import ConfigError, Settings
from alter_pipeline.lake.remote import object_store
from alter_pipeline.lake.snapshot import Lake, lake_at
from alter_pipeline.storefronts import ROOT_PREFIX, configured, link_name, root_of


def open_lake(root: Path, settings: Settings | None = None) -> Lake:
    settings = settings or Settings.from_env(dotenv=False)
    return lake_at(settings.data_dir.resolve(), settings.lake_url, root.resolve())


def published_lakes(data_dir: Path, settings: Settings | None = None) -> list[Lake]:
    """Every lake published under ALTER_DATA_DIR's object-store URL (the deployment's and each
    storefront's `storefront_id=<id>`), found by listing the store, so a machine that never
    synced knows them too. Empty for a local lake."""
    settings = settings or Settings.from_env(dotenv=False)
    if settings.lake_url is None:
        return []
    store, base = object_store(settings.lake_url)
    listing = store.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    kinds = {info.base_name: info.type for info in listing}
    roots = [data_dir] if kinds.get("CURRENT") == pafs.FileType.File else []
    roots += [
        data_dir / name
        for name, kind in sorted(kinds.items())
        if name.startswith(ROOT_PREFIX) and kind == pafs.FileType.Directory
    ]
    return [lake_at(data_dir.resolve(), settings.lake_url, root.resolve()) for root in roots]


def published_root(data_dir: Path, name: str, settings: Settings | None = None) -> Path | None:
    """The root of storefront `name` as published in the object store (its current
    manifest names it), linked locally for next time; None if no published lake does."""
    for lake in published_lakes(data_dir, settings):
        assert lake.remote is not None
        snapshot_id = lake.remote.current_id()
        manifest = lake.remote.manifest(snapshot_id) if snapshot_id else None
        meta = (manifest or {}).get("meta", {})
        if meta.get("storefront_name") == name and meta.get("storefront_id") is not None:
            link_name(data_dir, name, int(meta["storefront_id"]))
            return lake.root
    return None


def for_storefront(settings: Settings) -> Settings:
    """`settings` whose data_dir is the lake root of $ALTER_STOREFRONT (where its lake, outbox
    and rules ledger live); unchanged without storefronts.yaml. With the file, a command that
    works on one storefront's state needs to be told which."""
    storefronts = configured(settings.storefronts_file)
    if storefronts is None:
        if settings.storefront:
            raise ConfigError(f"ALTER_STOREFRONT is set but {settings.storefronts_file} is absent")
        return settings
    if not settings.storefront:
        raise ConfigError(
            f"{settings.storefronts_file} lists several storefronts: set ALTER_STOREFRONT to "
            f"one of {', '.join(storefronts.names)}"
        )
    name = storefronts.get(settings.storefront).name
    root = root_of(settings.data_dir, name) or published_root(settings.data_dir, name, settings)
    if root is None:
        raise ConfigError(f"storefront {name} has no lake yet: run `alter-pipeline sync` first")
    return dataclasses.replace(settings, data_dir=root)
