"""Which storefront a run works on, and that storefront's client, lake and settings.

With a storefronts.yaml, every asset and job is partitioned by storefront name and a run works
on one partition; without it there is one storefront and no partitions. Asset bodies, checks
and ops all ask `scope_of(context)` instead of reading the resources directly, so the same
code serves both deployments. The partition comes from the run's `dagster/partition` tag,
which Dagster sets on every partitioned run, so checks and ops see it too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from alter_pipeline import storefronts as sf
from alter_pipeline.config import ConfigError, Settings
from alter_pipeline.lake import Lake
from alter_pipeline.lake.locate import published_root
from alter_pipeline.resources import AlterApiResource, LakeResource

if TYPE_CHECKING:
    from alter_pipeline.api import AlterClient

PARTITION_TAG = "dagster/partition"


def configured_storefronts() -> sf.Storefronts | None:
    """storefronts.yaml of this deployment ($ALTER_STOREFRONTS_FILE), if there is one."""
    return sf.configured(Settings.from_env().storefronts_file)


def storefront_partitions(
    storefronts: sf.Storefronts | None,
) -> dg.StaticPartitionsDefinition | None:
    return dg.StaticPartitionsDefinition(storefronts.names) if storefronts else None


@dataclass(frozen=True)
class Scope:
    """One run's storefront (`name` None in a single-storefront deployment)."""

    name: str | None
    lake_resource: LakeResource
    api_resource: AlterApiResource | None = None

    @property
    def label(self) -> str:
        return f"storefront {self.name}" if self.name else "the storefront"

    def storefront(self) -> sf.Storefront | None:
        if self.name is None:
            return None
        found = configured_storefronts()
        if found is None:
            raise dg.Failure(
                f"partition {self.name!r} names a storefront, but there is no storefronts file "
                f"at {Settings.from_env().storefronts_file} (ALTER_STOREFRONTS_FILE)"
            )
        try:
            return found.get(self.name)
        except ConfigError as error:
            raise dg.Failure(str(error)) from None

    def client(self) -> AlterClient:
        assert self.api_resource is not None, "this asset has no alter_api resource"
        try:
            return self.api_resource.client(self.storefront())
        except ConfigError as error:
            raise dg.Failure(str(error)) from None

    def root(self) -> Path:
        """This storefront's lake root (the data directory itself without storefronts)."""
        data_dir = self.lake_resource.path()
        if self.name is None:
            return data_dir
        root = storefront_root(self.lake_resource, self.name)
        if root is None:
            raise dg.Failure(
                f"{self.label} has no lake yet: run sync_job for partition {self.name} first"
            )
        return root

    def lake(self) -> Lake:
        return self.lake_resource.lake(self.root())

    def lake_for_sync(self, client: AlterClient) -> tuple[Lake, int | None]:
        """The lake a sync writes: the storefront's own, found from the id the API gives its
        credentials (and linked from its name for everything else to find), with that id
        (None when not asked: the sync asks itself)."""
        if self.name is None:
            return self.lake_resource.lake(), None
        data_dir = self.lake_resource.path()
        storefront_id = client.auth_check().storefront_id
        sf.link_name(data_dir, self.name, storefront_id)
        return self.lake_resource.lake(sf.lake_root(data_dir, storefront_id)), storefront_id

    def settings(self) -> Settings:
        """Settings whose data_dir is this storefront's root: its outbox and ledger live there."""
        return dataclasses.replace(Settings.from_env(), data_dir=self.root())

    def covers(self, scoped_to: tuple[str, ...]) -> bool:
        """Whether a rule or webhook endpoint scoped to `scoped_to` (empty: all) applies here.
        A scoped one never applies to a run that names no storefront: it was meant for one."""
        return not scoped_to or (self.name is not None and self.name in scoped_to)


def storefront_root(lake: LakeResource, name: str) -> Path | None:
    """Storefront `name`'s lake root: linked locally by a sync on this machine, else found
    in the object store (a sensor or run pod that never synced it)."""
    data_dir = lake.path()
    return sf.root_of(data_dir, name) or published_root(data_dir, name, lake.settings())


def scope_of(context: Any, lake: LakeResource, alter_api: AlterApiResource | None = None) -> Scope:
    name = context.run.tags.get(PARTITION_TAG) if context.run else None
    return Scope(name=name, lake_resource=lake, api_resource=alter_api)


# ---- sensors over several storefronts ------------------------------------------------------

Tick = tuple[dg.RunRequest | None, str, str]
"""One storefront's evaluation: the run to request (or None), its new cursor, why not."""


def tick_each_storefront(
    context: dg.SensorEvaluationContext,
    lake: LakeResource,
    storefronts: sf.Storefronts | None,
    evaluate: Callable[[Path, str | None, str | None], Tick],
) -> dg.SensorResult | dg.SkipReason:
    """Run `evaluate(lake_root, cursor, partition_key)` for the deployment's storefront, or
    for each storefront with its own cursor (kept together as JSON), so one storefront's
    quiet or broken lake never holds back another's runs. Run keys gain the storefront name."""
    if storefronts is None:
        request, cursor, reason = evaluate(lake.path(), context.cursor, None)
        if request is None:
            return dg.SkipReason(reason)
        return dg.SensorResult(run_requests=[request], cursor=cursor)
    cursors = _storefront_cursors(context.cursor)
    requests, reasons = [], []
    for name in storefronts.names:
        root = storefront_root(lake, name)
        if root is None:
            reasons.append(f"{name}: not synced yet")
            continue
        request, cursors[name], reason = evaluate(root, cursors.get(name), name)
        if request is None:
            reasons.append(f"{name}: {reason}")
        else:
            requests.append(request)
    if not requests:
        return dg.SkipReason("; ".join(reasons))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursors, sort_keys=True))


def _storefront_cursors(text: str | None) -> dict[str, str | None]:
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}  # unreadable: evaluate as on a first tick (run keys prevent repeats)
    return data if isinstance(data, dict) else {}
