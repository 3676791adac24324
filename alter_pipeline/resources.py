"""Dagster resources: the API client and the lake, configured from the environment."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from alter_pipeline.api import AlterClient, RetryPolicy, Timeouts
from alter_pipeline.config import Settings, data_location, validate_base_url
from alter_pipeline.lake import Lake
from alter_pipeline.lake.locate import open_lake
from alter_pipeline.storefronts import Storefront


class AlterApiResource(dg.ConfigurableResource):
    """The Alter public API. Key and token come from `EnvVar`s, so the UI never shows them."""

    api_key: str = Field(description="x-alter-access-key (set through EnvVar('ALTER_API_KEY'))")
    api_token: str = Field(description="x-alter-access-token (EnvVar('ALTER_API_TOKEN'))")
    base_url: str | None = Field(
        default=None, description="Defaults to $ALTER_API_BASE_URL, else the public endpoint."
    )
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    max_attempts: int = 6
    concurrency: int = Field(default=8, description="Pages in flight while listing.")

    def resolved_base_url(self) -> str:
        return validate_base_url(self.base_url) if self.base_url else Settings.from_env().base_url

    def client(self, storefront: Storefront | None = None) -> AlterClient:
        """A client for the configured credentials, or for one storefront of storefronts.yaml
        (its base URL, and key and token from the environment variables it names)."""
        if storefront is None:
            base_url, key, token = self.resolved_base_url(), self.api_key, self.api_token
        else:
            base_url, (key, token) = storefront.base_url, storefront.credentials()
        return AlterClient(
            base_url,
            key,
            token,
            timeouts=Timeouts(connect=self.connect_timeout_s, read=self.read_timeout_s),
            retry=RetryPolicy(max_attempts=self.max_attempts),
        )


class LakeResource(dg.ConfigurableResource):
    """Where the Parquet lake and the DuckDB warehouse live ($ALTER_DATA_DIR, default ./data)."""

    data_dir: str | None = Field(
        default=None,
        description="A directory, or an object-store URL (s3://bucket/prefix) whose local "
        "mirror is $ALTER_CACHE_DIR. Default: $ALTER_DATA_DIR.",
    )

    def settings(self) -> Settings:
        settings = Settings.from_env()
        if not self.data_dir:
            return settings
        location = data_location(self.data_dir, os.environ.get("ALTER_CACHE_DIR"))
        return dataclasses.replace(settings, **location)

    def path(self) -> Path:
        """The local working directory (the lake itself, or the object store's mirror)."""
        return self.settings().data_dir

    def lake(self, root: Path | None = None) -> Lake:
        """The lake at the data directory, or at one storefront's root under it."""
        return open_lake(root or self.path(), self.settings())
