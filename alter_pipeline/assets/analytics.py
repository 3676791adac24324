"""The dashboard models: the dbt project in analytics/, loaded with dagster-dbt.

Every dbt model is an asset (group `analytics`) downstream of the lake tables it reads, every
dbt test an asset check. The models refresh when a sync changed the data they read (the sync
stamps a content data version on orders, order_items and products; `REFRESH_ON_CHANGE`), and
daily (`analytics_schedule`, for the age-based abandoned carts). Each refresh rewrites the
Parquet files, the warehouse views over them and the HTML report.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from alter_pipeline.analytics import (
    DASHBOARD_MODELS,
    DBT_PROJECT_DIR,
    NEWEST_FIRST,
    analytics_dir,
    dbt_executable,
    dbt_lock,
    dbt_vars,
    manifest_is_stale,
    model_file,
    parse_project,
    prepare_sources,
)
from alter_pipeline.assets.groups import ANALYTICS_GROUP
from alter_pipeline.assets.metadata import markdown_preview
from alter_pipeline.resources import LakeResource
from alter_pipeline.storefronts import storefront_roots
from alter_pipeline.warehouse import ensure_views

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR)
# make install parses the project; a model changed since (a reload in `make ui`) or a checkout
# installed some other way is parsed here, once. (Not DbtProject.prepare_if_dev: it runs
# whichever `dbt` PATH finds, and re-parses in every run's process.)
if manifest_is_stale(dbt_project.project_dir):
    parse_project(dbt_project.project_dir)

# Build a model when it is new; refresh it when a lake table it reads holds different data
# (the sync's content data version: an unchanged sync keeps it) or when a model upstream is
# refreshed in the same tick; never while a dep or the model itself is running.
REFRESH_ON_CHANGE = (
    (
        dg.AutomationCondition.newly_missing()
        | dg.AutomationCondition.any_deps_match(
            dg.AutomationCondition.data_version_changed()
            | dg.AutomationCondition.will_be_requested()
        )
    ).since(dg.AutomationCondition.newly_requested() | dg.AutomationCondition.newly_updated())
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("build when new, refresh after a sync changed the data")


class AnalyticsTranslator(DagsterDbtTranslator):
    """dbt models as assets of the `analytics` group that refresh on changed data."""

    def get_asset_spec(
        self, manifest: Any, unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if not unique_id.startswith("model."):
            return spec
        return spec.replace_attributes(
            group_name=ANALYTICS_GROUP,
            owners=["team:analytics"],
            automation_condition=REFRESH_ON_CHANGE,
        )


class AnalyticsConfig(dg.Config):
    abandoned_days: int = 30


def dbt_resource() -> DbtCliResource:
    """The dbt CLI of this environment (never PATH's), run in the project's folder."""
    return DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable())


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    name="analytics",
    dagster_dbt_translator=AnalyticsTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
    ),
)
def analytics(
    context: dg.AssetExecutionContext,
    config: AnalyticsConfig,
    dbt: DbtCliResource,
    lake: LakeResource,
) -> Iterator[Any]:
    """`dbt build` of the selected models and their tests over every storefront's lake."""
    data_dir = lake.path()
    _drop_legacy_tables(context, lake)
    with dbt_lock(data_dir):
        prepare_sources(data_dir)
        invocation = dbt.cli(
            ["build", "--vars", dbt_vars(data_dir, abandoned_days=config.abandoned_days)],
            context=context,
            # dbt's run artifacts and logs beside its database, not in the checkout
            target_path=analytics_dir(data_dir) / "target",
        )
        for event in invocation.stream():
            yield _with_dashboard_metadata(context, event, data_dir)
    ensure_views(data_dir)
    # Altair and vl-convert: 1.7 s to import (python -X importtime), which loading the code
    # location (every sensor tick's process) does without
    from alter_pipeline.report import write_report

    report = write_report(data_dir)
    context.log.info(f"report: {report}")


def _drop_legacy_tables(context: dg.AssetExecutionContext, lake: LakeResource) -> None:
    """Before the dbt project the dashboard tables were lake tables, carried into every new
    snapshot: drop them once (the warehouse views read the models' files instead)."""
    for root in storefront_roots(lake.path()):
        storefront_lake = lake.lake(root)
        current = storefront_lake.current()
        legacy = [t for t in DASHBOARD_MODELS if current is not None and current.has_table(t)]
        if legacy:
            with storefront_lake.write() as writer:
                for table in legacy:
                    writer.drop(table)
            context.log.info(f"dropped the lake's old dashboard tables: {', '.join(legacy)}")


def _with_dashboard_metadata(context: dg.AssetExecutionContext, event: Any, data_dir: Path) -> Any:
    """A dashboard model's materialization gets a newest-first preview and the report link."""
    if isinstance(event, dg.Output):
        name = context.asset_key_for_output(event.output_name).path[-1]
    elif isinstance(event, dg.AssetMaterialization):
        name = event.asset_key.path[-1]
    else:
        return event
    if name not in DASHBOARD_MODELS:
        return event
    path = model_file(data_dir, name)
    with duckdb.connect(":memory:") as con:
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{_quote(path)}')").fetchall()[0]
        preview = con.sql(
            f"SELECT * EXCLUDE (storefront_id) FROM read_parquet('{_quote(path)}') "
            f"{'ORDER BY ' + NEWEST_FIRST[name] if name in NEWEST_FIRST else ''} LIMIT 5"
        ).to_arrow_table()
    return event.with_metadata(
        {
            **event.metadata,
            "dagster/row_count": dg.MetadataValue.int(rows[0]),
            "preview": dg.MetadataValue.md(markdown_preview(preview)),
            "path": dg.MetadataValue.path(str(path)),
            "report": dg.MetadataValue.url(report_url(data_dir)),
        }
    )


def report_url(data_dir: Path) -> str:
    return (analytics_dir(data_dir).absolute() / "report.html").as_uri()


def _quote(path: Path) -> str:
    return path.as_posix().replace("'", "''")
