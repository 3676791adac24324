"""The smaller findings of the hostile new user (issue 13, point 8), each one clear line."""

from __future__ import annotations

import functools
import http.server
import os
import re
import resource
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from alter_pipeline.api import AlterClient
from alter_pipeline.api.errors import NotFoundError
from alter_pipeline.cli import app
from alter_pipeline.rules import RulesError, parse_rules

CLI = [sys.executable, "-m", "alter_pipeline.cli"]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def html_404_server(tmp_path: Path) -> Iterator[str]:
    """A plain web server (Python's own) where the API should be: every path an HTML 404."""
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/public-api/v1"
    finally:
        server.shutdown()
        thread.join(5)


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(
        os.environ,
        ALTER_API_KEY="key-for-small-hardening",
        ALTER_API_TOKEN="token-for-small-hardening",
        ALTER_DATA_DIR=str(tmp_path / "data"),
        DAGSTER_HOME=str(tmp_path / "home"),
    )
    env.update(extra)
    return env


def test_auth_check_against_an_html_404_is_one_line(html_404_server: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path, ALTER_API_BASE_URL=html_404_server)
    result = subprocess.run([*CLI, "auth", "check"], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: not found: an HTML page 'Error response' instead of the API's JSON "
        "(is the base URL right?) (GET /auth/check -> 404)"
    ]


def test_the_clients_error_for_an_html_404_is_one_line(html_404_server: str) -> None:
    # A multi-line message made `sync` print its last line only: an empty one.
    client = AlterClient(html_404_server, "key-x1", "token-x1")
    with client, pytest.raises(NotFoundError) as raised:
        client.auth_check()
    assert "\n" not in str(raised.value)
    assert "an HTML page 'Error response'" in str(raised.value)


def test_a_data_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    result = subprocess.run(
        [*CLI, "query", "select 1"], env=cli_env(tmp_path), capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: ALTER_DATA_DIR names {tmp_path / 'data'}, which is a file, not a directory"
    ]


def test_the_emulator_with_empty_scopes_grants_none(tmp_path: Path) -> None:
    command = [*CLI, "emulator", "--port", "0", "--orders", "5", "--scopes", ""]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("ALTER_API_KEY", None), env.pop("ALTER_API_TOKEN", None)
    emulator = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert emulator.stdout is not None
        banner = [emulator.stdout.readline() for _ in range(6)]
        base_url = re.search(r"(http://127\.0\.0\.1:\d+/public-api/v1)", banner[0]).group(1)  # type: ignore[union-attr]
        assert "  scopes: (none)\n" in banner
        headers = {"x-alter-access-key": "demo-key-alter-emulator",
                   "x-alter-access-token": "demo-token-alter-emulator"}  # fmt: skip
        auth = httpx.get(base_url + "/auth/check", headers=headers).json()
        orders = httpx.get(base_url + "/customer-orders", headers=headers)
    finally:
        emulator.terminate()
        emulator.wait(10)
    assert auth["scopes"] == [] and orders.status_code == 403


@pytest.mark.parametrize(
    "host",
    ["169.254.169.254", "metadata.google.internal", "[fe80::1]", "100.100.100.200"],
)
def test_a_webhook_url_at_a_metadata_or_link_local_address_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "webhooks.yaml").write_text(
        "endpoints:\n  - id: shop\n"
        f"    url: http://{host}/latest/meta-data\n"
        "    events: ['*']\n    secret_env: SHOP_WEBHOOK_SECRET\n"
    )
    result = CliRunner().invoke(app, ["webhooks", "check", "webhooks.yaml"])
    assert result.exit_code == 2
    assert re.search(r"webhooks\.yaml:3:10: .*(link-local|metadata)", result.stderr)


def test_a_webhook_url_on_loopback_or_a_private_network_is_still_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    endpoints = "".join(
        f"  - id: e{n}\n    url: http://{host}:9000/hooks\n    events: ['*']\n"
        "    secret_env: SHOP_WEBHOOK_SECRET\n"
        for n, host in enumerate(["127.0.0.1", "10.0.0.5", "shop.example.com"])
    )
    (tmp_path / "webhooks.yaml").write_text("endpoints:\n" + endpoints)
    result = CliRunner().invoke(app, ["webhooks", "check", "webhooks.yaml"])
    assert result.exit_code == 0, result.stderr


def test_a_dagster_home_on_a_full_disk_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = cli_env(tmp_path, ALTER_API_BASE_URL="http://127.0.0.1:9/public-api/v1")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))  # writes past 20 kB fail
    try:
        result = CliRunner().invoke(app, ["sync"])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: Dagster's storage in {tmp_path / 'home'} failed: ")


def test_a_duplicate_rule_id_still_reports_the_rules_other_mistakes() -> None:
    text = """\
rules:
  - id: same
    when: {status: editable}
    then: {set_status: cancelled}
  - id: same
    when: {agee: 30d}
    then: {set_status: cancelled}
"""
    with pytest.raises(RulesError) as raised:
        parse_rules(text, source="rules.yaml")
    lines = raised.value.lines()
    assert any("duplicate rule id 'same'" in line for line in lines), lines
    assert any("unknown field 'agee'" in line for line in lines), lines
