"""`alter-pipeline inbound serve | status | check` as an operator runs them."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import typer
from inbound_helpers import STRIPE_SECRET, event_body, sign
from typer.testing import CliRunner

from alter_pipeline.cli.inbound import inbound_app

CONFIG = "sources:\n  - {id: stripe, path: /hooks/stripe, kind: stripe, secret_env: STRIPE_S}\n"
app = typer.Typer()
app.add_typer(inbound_app, name="inbound")


def environment(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "inbound.yaml").write_text(CONFIG)
    return {
        "ALTER_INBOUND_FILE": str(tmp_path / "inbound.yaml"),
        "ALTER_DATA_DIR": str(tmp_path / "data"),
        "ALTER_STOREFRONTS_FILE": str(tmp_path / "absent.yaml"),
        "STRIPE_S": STRIPE_SECRET,
    }


def test_serve_stores_events_and_stops_cleanly_on_sigterm_with_its_counters_saved(tmp_path):
    env = environment(tmp_path)
    command = [str(Path(sys.executable).parent / "alter-pipeline"), "inbound", "serve"]
    server = subprocess.Popen(
        [*command, "--port", "0"],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = server.stdout.readline() if server.stdout else ""
        url = first.split("POST ", 1)[1].strip()  # "stripe (stripe): POST http://...:port/..."
        body = event_body("evt_cli")
        with httpx.Client(timeout=10) as client:
            stored = client.post(url, content=body, headers=sign("stripe", body, "evt_cli"))
            forged = client.post(url, content=body, headers={"Stripe-Signature": "t=1,v1=00"})
        assert (stored.status_code, forged.status_code) == (200, 401)
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
    assert code == 128 + signal.SIGTERM  # it stopped itself, after the writers flushed
    status = CliRunner(env=env | {"COLUMNS": "200"}).invoke(app, ["inbound", "status"])
    assert status.exit_code == 0, status.output
    row = next(line for line in status.stdout.splitlines() if "stripe" in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells == ["stripe", "1", "0", "1 (signature 1)", "1", "0", "0", "0", "0"]


def test_check_names_an_unset_secret_variable_and_exits_2(tmp_path):
    env = environment(tmp_path) | {"STRIPE_S": ""}
    result = CliRunner(env=env).invoke(app, ["inbound", "check"])
    assert result.exit_code == 2
    assert "inbound source stripe: environment variable STRIPE_S is unset" in result.output
