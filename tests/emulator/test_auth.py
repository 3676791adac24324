"""Credentials on every endpoint but /healthz and the public files; scopes per endpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from alter_pipeline.contract import SCOPES
from alter_pipeline.emulator import RunningEmulator
from alter_pipeline.emulator.config import DEMO_KEY, DEMO_TOKEN, EmulatorConfig, resolve_credentials

from ._http import TLS, client_of

ORDER = {"tool": "viewer", "origin": "https://yourstore.com", "orderId": 1}
# One call per scoped endpoint: (scope, method, url, body).
SCOPED_CALLS = [
    ("orders:read", "GET", "/customer-orders", None),
    ("orders:read", "GET", "/customer-orders/1", None),
    ("orders:read", "POST", "/customer-orders/batch", {"customerOrderIds": [1]}),
    ("orders:write", "PATCH", "/customer-orders/1/status", {"status": "paid"}),
    ("orders:write", "PATCH", "/customer-orders/1/quantity",
     {"items": [{"orderDetailId": 1, "quantity": 2}]}),
    ("orders:write", "PATCH", "/customer-orders/1/quantity/all", {"quantity": 2}),
    ("orders:write", "DELETE", "/customer-orders/1", None),
    ("products:read", "GET", "/products", None),
    ("products:read", "GET", "/products/381", None),
    ("embed:session:create", "POST", "/embed/session", ORDER),
]  # fmt: skip


@pytest.mark.parametrize(("scope", "method", "url", "body"), SCOPED_CALLS)
def test_missing_headers_are_a_401(
    emulator: RunningEmulator, scope: str, method: str, url: str, body: Any
) -> None:
    with httpx.Client(base_url=emulator.base_url, verify=TLS) as anonymous:
        answer = anonymous.request(method, url, json=body)
    assert answer.status_code == 401
    assert "missing x-alter-access-key" in answer.json()["message"]


@pytest.mark.parametrize("header", ["x-alter-access-key", "x-alter-access-token"])
def test_a_wrong_key_or_token_is_a_401(emulator: RunningEmulator, header: str) -> None:
    with client_of(emulator, **{header: "guess"}) as client:
        answer = client.get("/auth/check")
    assert answer.status_code == 401
    assert answer.json() == {"message": "invalid API credentials"}


def test_a_missing_token_alone_is_a_401_naming_it(emulator: RunningEmulator) -> None:
    with client_of(emulator, **{"x-alter-access-token": ""}) as client:
        answer = client.get("/customer-orders")
    assert answer.json()["message"] == "missing x-alter-access-token header"


def test_healthz_needs_no_credentials(emulator: RunningEmulator) -> None:
    answer = httpx.get(emulator.base_url + "/healthz", verify=TLS)
    assert (answer.status_code, answer.json()) == (200, {"ok": True})


@pytest.mark.parametrize(("scope", "method", "url", "body"), SCOPED_CALLS)
def test_each_endpoint_answers_403_without_its_scope(
    emulator_factory: Callable[..., RunningEmulator],
    scope: str,
    method: str,
    url: str,
    body: Any,
) -> None:
    others = tuple(s for s in SCOPES if s != scope)
    with client_of(emulator_factory(scopes=others)) as client:
        answer = client.request(method, url, json=body)
    assert answer.status_code == 403
    assert answer.json() == {"message": f"missing scope {scope}"}


def test_auth_check_works_with_any_scope_and_lists_them(
    emulator_factory: Callable[..., RunningEmulator],
) -> None:
    with client_of(emulator_factory(scopes=("products:read",))) as client:
        answer = client.get("/auth/check")
    assert answer.status_code == 200
    assert answer.json()["scopes"] == ["products:read"]


def test_explicit_credentials_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALTER_API_KEY", "env-key")
    monkeypatch.setenv("ALTER_API_TOKEN", "env-token")
    chosen = resolve_credentials(EmulatorConfig(key="k", token="t"))
    assert (chosen.key, chosen.token, chosen.is_demo) == ("k", "t", False)


def test_environment_credentials_win_over_the_demo_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALTER_API_KEY", "env-key")
    monkeypatch.setenv("ALTER_API_TOKEN", "env-token")
    assert resolve_credentials(EmulatorConfig()).key == "env-key"


def test_demo_credentials_apply_when_nothing_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALTER_API_KEY", raising=False)
    monkeypatch.delenv("ALTER_API_TOKEN", raising=False)
    chosen = resolve_credentials(EmulatorConfig())
    assert (chosen.key, chosen.token, chosen.is_demo) == (DEMO_KEY, DEMO_TOKEN, True)


def test_configured_credentials_are_the_ones_accepted(
    emulator_factory: Callable[..., RunningEmulator],
) -> None:
    emulator = emulator_factory(key="my-key", token="my-token")
    assert (emulator.key, emulator.token) == ("my-key", "my-token")
    with client_of(emulator) as client:
        assert client.get("/auth/check").status_code == 200
