"""The Dagster code location of this deployment (`dagster dev -m alter_pipeline.definitions`,
workspace.yaml): built by `location.build_definitions` for $ALTER_STOREFRONTS_FILE.

Nothing in the package imports this module (import-linter checks it): it is Dagster's entry.
"""

from alter_pipeline.assets.scope import configured_storefronts
from alter_pipeline.location import build_definitions, build_resources

__all__ = ["build_definitions", "build_resources", "defs"]

defs = build_definitions(configured_storefronts())
