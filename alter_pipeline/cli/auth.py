"""`alter-pipeline auth check`: what the configured credentials give."""

from __future__ import annotations

import typer

from alter_pipeline.cli.base import console, guarded, settings

auth_app = typer.Typer(no_args_is_help=True, help="Check API credentials.")


@auth_app.command("check")
def auth_check() -> None:
    """Print the storefront, credential and scopes the configured key and token give."""

    def check() -> None:
        # 0.3 s to import (httpx; python -X importtime): only for the verbs that call the API
        from alter_pipeline.api import AlterClient

        conf = settings()
        conf.require_credentials()
        with AlterClient(conf.base_url, conf.api_key, conf.api_token) as client:
            info = client.auth_check()
        console.print(f"API:         {conf.base_url}")
        console.print(f"storefront:  {info.storefront_id}")
        console.print(f"owner:       {info.user_owner_id}")
        console.print(f"credential:  {info.credential_id}")
        console.print(f"scopes:      {', '.join(info.scopes) or '(none)'}")

    guarded(check)
