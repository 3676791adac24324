"""POST /embed/session: real HS256 JWTs for allowed origins only."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import jwt
import pytest

from alter_pipeline.contract import example
from alter_pipeline.emulator import RunningEmulator
from alter_pipeline.emulator.config import DEMO_EMBED_SECRET

from ._http import client_of

DESIGN = {"tool": "customizer", "origin": "https://yourstore.com", "designId": 381}


def test_token_verifies_with_the_emulator_secret(client: httpx.Client) -> None:
    answer = client.post("/embed/session", json=DESIGN).json()
    claims = jwt.decode(answer["token"], DEMO_EMBED_SECRET, algorithms=["HS256"])
    assert claims["mode"] == "design"
    assert claims["tool"] == "customizer"
    assert claims["origin"] == "https://yourstore.com"
    assert claims["designId"] == claims["resourceId"] == 381
    assert claims["storefrontId"] == 12


def test_token_expires_in_an_hour(client: httpx.Client) -> None:
    answer = client.post("/embed/session", json=DESIGN).json()
    claims = jwt.decode(answer["token"], DEMO_EMBED_SECRET, algorithms=["HS256"])
    assert answer["expiresIn"] == 3600
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["exp"] - (time.time() + 3600)) < 60


def test_token_header_is_the_documented_one_with_kid_1(client: httpx.Client) -> None:
    answer = client.post("/embed/session", json=DESIGN).json()
    assert jwt.get_unverified_header(answer["token"]) == {"alg": "HS256", "kid": "1"}
    documented = example("embed_session.response")["token"].removesuffix("...")
    assert answer["token"].startswith(documented)
    assert answer["kid"] == "1"


def test_order_sessions_have_order_mode(emulator: RunningEmulator, client: httpx.Client) -> None:
    order_id = emulator.store.order_ids()[0]
    body = {"tool": "viewer", "origin": "http://localhost:3000", "orderId": order_id}
    answer = client.post("/embed/session", json=body).json()
    claims = jwt.decode(answer["token"], DEMO_EMBED_SECRET, algorithms=["HS256"])
    assert answer["mode"] == claims["mode"] == "order"
    assert claims["orderId"] == order_id


def test_token_does_not_verify_with_another_secret(client: httpx.Client) -> None:
    token = client.post("/embed/session", json=DESIGN).json()["token"]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-secret-of-at-least-32-bytes!", algorithms=["HS256"])


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "http://yourstore.com", "https://yourstore.com:8443"]
)
def test_origin_off_the_allow_list_is_a_403(client: httpx.Client, origin: str) -> None:
    answer = client.post("/embed/session", json={**DESIGN, "origin": origin})
    assert answer.status_code == 403
    assert origin in answer.json()["message"]


def test_origin_with_a_path_is_a_400(client: httpx.Client) -> None:
    answer = client.post("/embed/session", json={**DESIGN, "origin": "https://yourstore.com/x"})
    assert answer.status_code == 400


def test_allowed_origins_and_secret_are_configurable(
    emulator_factory: Callable[..., RunningEmulator],
) -> None:
    emulator = emulator_factory(allowed_origins=("https://shop.example",), embed_secret="s" * 40)
    with client_of(emulator) as client:
        allowed = client.post("/embed/session", json={**DESIGN, "origin": "https://shop.example"})
        refused = client.post("/embed/session", json=DESIGN)
    assert jwt.decode(allowed.json()["token"], "s" * 40, algorithms=["HS256"])["tool"]
    assert refused.status_code == 403
