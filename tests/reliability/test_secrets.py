"""Secrets and exposure.

* After a demo-like flow through Dagster (a real instance in a temporary DAGSTER_HOME: sync,
  webhooks, a rules run that fails on revoked credentials, the CLI), the API key and
  token and the webhook secret appear in no file under the data dir or the Dagster home (raw
  bytes, and the decoded contents of every Parquet file), no log record, no console output, no
  run error and no webhook payload or header.
* The emulator and `webhooks listen` bind 127.0.0.1 unless told otherwise.
* The emulator asks for credentials on every route but the documented public ones.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
import yaml
from reliability_helpers import RULES, leaks_in_files, leaks_in_text, needles
from signal_helpers import terminate_or_explain
from typer.testing import CliRunner

from alter_pipeline.cli import app
from alter_pipeline.config import Settings, env_name_problem
from alter_pipeline.emulator import EmulatorConfig, RunningEmulator, start_emulator
from alter_pipeline.emulator.__main__ import parse_args
from alter_pipeline.emulator.app import ROUTES
from alter_pipeline.emulator.config import BASE_PATH
from alter_pipeline.emulator.faults import RevokedFault
from alter_pipeline.jobs_runner import run_job
from alter_pipeline.webhooks.receiver import Receiver, run_receiver

Factory = Callable[..., RunningEmulator]
SECRET_ENV = "SHOP_WEBHOOK_SECRET"


def _received_texts(receiver: Receiver) -> list[str]:
    return [r.body.decode() + repr(r.headers) for r in receiver.received]


@pytest.fixture
def credentials() -> dict[str, str]:
    return {
        "key": f"key-{secrets.token_hex(12)}",
        "token": f"token-{secrets.token_hex(16)}",
        "secret": "whsec_" + base64.b64encode(os.urandom(32)).decode(),
    }


def test_no_secret_leaks_from_a_demo_like_flow(
    emulator_factory: Factory,
    credentials: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator = emulator_factory(orders=80, key=credentials["key"], token=credentials["token"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(SECRET_ENV, credentials["secret"])
    with run_receiver(credentials["secret"]) as receiver:
        settings = _configure(tmp_path, emulator, receiver, monkeypatch)
        outcomes = [
            run_job("sync_job", settings, _sync(full=True, emit_initial=True)),
            run_job("deliver_webhooks_job", settings),
            run_job("analytics_job", settings),
        ]
        assert all(o.success for o in outcomes), [o.error for o in outcomes]
        cli = CliRunner().invoke(app, ["auth", "check"])
        emulator.set_faults([RevokedFault()])
        failed = run_job("apply_rules_job", settings, _rules(emulator))
        failed_sync = run_job("sync_job", settings, _sync(full=False))
        denied = CliRunner().invoke(app, ["auth", "check"])
    assert not failed.success and "authentication failed" in (failed.error or "")
    assert not failed_sync.success and "authentication failed" in (failed_sync.error or "")
    assert denied.exit_code == 1 and "authentication failed" in denied.stderr
    secret = needles(*credentials.values())
    assert leaks_in_files([tmp_path], secret) == []
    texts = [r.getMessage() for r in caplog.records] + [str(r.exc_info) for r in caplog.records]
    texts += [*capfd.readouterr(), cli.output, denied.output, failed.error or ""]
    texts += [failed_sync.error or ""]
    texts += [repr(o.metadata) for o in [*outcomes, failed, failed_sync]]
    texts += _received_texts(receiver)
    assert receiver.accepted(), "the flow delivered no webhook: nothing was scanned there"
    assert leaks_in_text(texts, secret) == []


def _configure(
    root: Path, emulator: RunningEmulator, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    (root / "rules.yaml").write_text(textwrap.dedent(RULES))
    endpoint = {"id": "shop", "url": receiver.url + "/hooks", "events": ["*"],
                "secret_env": SECRET_ENV}  # fmt: skip
    (root / "webhooks.yaml").write_text(yaml.safe_dump({"endpoints": [endpoint]}))
    env = {
        "ALTER_API_BASE_URL": emulator.base_url,
        "ALTER_API_KEY": emulator.key,
        "ALTER_API_TOKEN": emulator.token,
        "ALTER_DATA_DIR": str(root / "data"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "ALTER_RULES_FILE": str(root / "rules.yaml"),
        "ALTER_WEBHOOKS_FILE": str(root / "webhooks.yaml"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env(dotenv=False)


def _sync(**config: Any) -> dict[str, Any]:
    return {"ops": {"alter_sync": {"config": config}}}


def _rules(emulator: RunningEmulator) -> dict[str, Any]:
    config = {"now": emulator.store.now().isoformat()}
    return {"ops": {"status_transitions": {"config": config}}}


# ---- binding ---------------------------------------------------------------------------------


def _option_default(command: str, option: str, group: str | None = None) -> Any:
    root = typer.main.get_command(app)
    if group is not None:
        root = root.commands[group]  # type: ignore[attr-defined]
    params = root.commands[command].params  # type: ignore[attr-defined]
    return next(p.default for p in params if p.name == option)


def test_the_emulator_binds_loopback_by_default_everywhere() -> None:
    assert EmulatorConfig().host == "127.0.0.1"
    assert parse_args([]).host == "127.0.0.1"
    assert _option_default("emulator", "host") == "127.0.0.1"
    emulator = start_emulator(EmulatorConfig(orders=5))
    try:
        assert emulator.base_url.startswith("http://127.0.0.1:")
    finally:
        emulator.stop()


def test_the_emulator_binds_where_it_is_told() -> None:
    emulator = start_emulator(EmulatorConfig(orders=5, host="127.0.0.2"))
    try:
        assert emulator.base_url.startswith("http://127.0.0.2:")
        assert httpx.get(emulator.base_url + "/healthz").status_code == 200
    finally:
        emulator.stop()


def test_webhooks_listen_binds_loopback_by_default(tmp_path: Path) -> None:
    assert _option_default("listen", "host", group="webhooks") == "127.0.0.1"
    env = {**os.environ, SECRET_ENV: "whsec_" + base64.b64encode(os.urandom(32)).decode()}
    command = [sys.executable, "-X", "faulthandler", "-m", "alter_pipeline.cli"]
    command += ["webhooks", "listen", "--port", "0"]
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as errors:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=errors, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
    finally:
        terminate_or_explain(proc, stderr)
    assert re.search(r"listening on http://127\.0\.0\.1:\d+/", line), line


def test_the_webhook_receiver_binds_where_it_is_told() -> None:
    with run_receiver("whsec_" + base64.b64encode(os.urandom(32)).decode(),
                      host="127.0.0.2") as receiver:  # fmt: skip
        assert receiver.url.startswith("http://127.0.0.2:")


# ---- authentication on every route -----------------------------------------------------------

PUBLIC_ROUTES = {"/healthz", "/openapi.json", "/files/public/products/{product_id}/{size}"}
SAMPLE_IDS = {"{id}": "1", "{product_id}": "4", "{size}": "small"}
BODIES = {"/customer-orders/batch": {"customerOrderIds": [1]}, "/status": {"status": "paid"},
          "/quantity": {"items": [{"orderDetailId": 1, "quantity": 2}]},
          "/quantity/all": {"quantity": 2},
          "/embed/session": {"tool": "viewer", "origin": "https://yourstore.com",
                             "orderId": 1}}  # fmt: skip


def _url(path: str) -> str:
    for placeholder, value in SAMPLE_IDS.items():
        path = path.replace(placeholder, value)
    return path


def _body(path: str) -> Any:
    return next((body for end, body in BODIES.items() if path.endswith(end)), None)


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, *_ in ROUTES])
def test_every_route_but_the_public_ones_asks_for_credentials(
    emulator: RunningEmulator, method: str, path: str
) -> None:
    assert set(PUBLIC_ROUTES) <= {p for _, p, *_ in ROUTES}
    with httpx.Client(base_url=emulator.base_url) as anonymous:
        answer = anonymous.request(method, _url(path), json=_body(path))
    if path in PUBLIC_ROUTES:
        assert answer.status_code < 400, answer.text
    else:
        assert answer.status_code == 401, answer.text
        assert answer.json()["message"].startswith("missing x-alter-access-")


def test_the_stats_route_is_emulator_only_and_outside_the_api_path(
    emulator: RunningEmulator,
) -> None:
    assert httpx.get(emulator.root_url + "/__emulator/stats").status_code == 200
    assert not any(p.startswith("/__emulator") for _, p, *_ in ROUTES)
    assert emulator.base_url.endswith(BASE_PATH)


# ---- *_env settings holding the secret itself ---------------------------------------------------

PASTED_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"


@pytest.mark.parametrize(
    ("file_name", "content", "command"),
    [
        (
            "storefronts.yaml",
            f"storefronts:\n  - name: berlin\n    api_key_env: {PASTED_KEY}\n"
            "    api_token_env: BERLIN_TOKEN\n",
            ["sync"],
        ),
        (
            "webhooks.yaml",
            "endpoints:\n  - id: shop\n    url: http://127.0.0.1:9/hooks\n"
            f"    events: ['*']\n    secret_env: {PASTED_KEY}\n",
            ["webhooks", "check", "webhooks.yaml"],
        ),
    ],
    ids=["storefronts-api-key-env", "webhooks-secret-env"],
)
def test_a_secret_pasted_where_a_variable_name_belongs_is_refused_unshown(
    tmp_path: Path, file_name: str, content: str, command: list[str]
) -> None:
    (tmp_path / file_name).write_text(content)
    env = dict(
        os.environ,
        ALTER_STOREFRONTS_FILE=str(tmp_path / "storefronts.yaml"),
        DAGSTER_HOME=str(tmp_path / "dagster_home"),
        ALTER_DATA_DIR=str(tmp_path / "data"),
    )
    (tmp_path / "dagster_home").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "alter_pipeline.cli", *command],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "looks like a secret, not a variable name" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # the problem (and a count line)
    secret = needles(PASTED_KEY)
    assert leaks_in_text([result.stdout, result.stderr], secret) == []
    assert leaks_in_files([tmp_path / "dagster_home", tmp_path / "data"], secret) == []


@pytest.mark.parametrize(
    "value", ["BERLIN_ALTER_API_KEY", "shop_webhook_secret", "_X", "API_KEY_2"]
)
def test_variable_names_are_accepted(value: str) -> None:
    assert env_name_problem(value) is None


@pytest.mark.parametrize(
    "value", [PASTED_KEY, "whsec_" + "A" * 44, "demo-key-alter-emulator", "a b", "ab12cd34"]
)
def test_values_that_are_not_variable_names_are_refused(value: str) -> None:
    problem = env_name_problem(value)
    assert problem is not None and value not in problem
