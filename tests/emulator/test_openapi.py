"""contract/openapi.json describes the API, and the emulator's answers validate against it."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import httpx
import pytest

from alter_pipeline.contract import example
from alter_pipeline.emulator import RunningEmulator
from alter_pipeline.emulator.app import ROUTES

from ._http import client_of
from ._jsonschema import Validator

DOCUMENT: dict[str, Any] = json.loads(
    resources.files("alter_pipeline.contract").joinpath("openapi.json").read_text("utf-8")
)
VALIDATOR = Validator(DOCUMENT)


def _template(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def response_errors(method: str, path: str, answer: httpx.Response) -> list[str]:
    """Problems of `answer` against the document's response for `method path`."""
    operation = DOCUMENT["paths"][path][method.lower()]
    responses = operation["responses"]
    spec = responses.get(str(answer.status_code)) or responses.get(f"{answer.status_code // 100}XX")
    if spec is None:
        return [f"{method} {path}: status {answer.status_code} is not documented"]
    if "$ref" in spec:
        spec = VALIDATOR.resolve(spec["$ref"])
    media = answer.headers["content-type"].split(";")[0]
    if media not in spec.get("content", {}):
        return [f"{method} {path} {answer.status_code}: media type {media} is not documented"]
    if media != "application/json":
        return []
    return VALIDATOR.errors(answer.json(), spec["content"][media]["schema"])


def assert_valid(method: str, path: str, answer: httpx.Response) -> None:
    problems = response_errors(method, path, answer)
    assert not problems, "\n".join(problems[:20])


def test_emulator_serves_the_contract_document(client: httpx.Client) -> None:
    answer = client.get("/openapi.json", headers={"x-alter-access-key": ""})
    assert answer.status_code == 200
    assert answer.json() == DOCUMENT


def test_document_is_openapi_3_1_secured_by_both_headers() -> None:
    assert DOCUMENT["openapi"].startswith("3.1")
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert {(s["in"], s["name"]) for s in schemes.values()} == {
        ("header", "x-alter-access-key"),
        ("header", "x-alter-access-token"),
    }


def test_document_describes_every_emulated_route() -> None:
    documented = {
        (method.upper(), _template(path))
        for path, operations in DOCUMENT["paths"].items()
        for method in operations
    }
    served = {(m, _template(p)) for m, p, *_ in ROUTES if p != "/openapi.json" and m != "OPTIONS"}
    assert served == documented


def test_document_names_the_scope_of_every_authenticated_operation() -> None:
    scopes = {(m, _template(p)): s for m, p, s, *_ in ROUTES}
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            scope = scopes[method.upper(), _template(path)]
            if scope in (None, "public"):
                continue
            assert operation["security"] == [{"AccessKey": [scope], "AccessToken": [scope]}]


def test_documented_examples_validate_against_their_schemas() -> None:
    checked = 0
    for operations in DOCUMENT["paths"].values():
        for operation in operations.values():
            bodies = [operation.get("requestBody", {})]
            bodies += [VALIDATOR.resolve(r["$ref"]) if "$ref" in r else r
                       for r in operation["responses"].values()]  # fmt: skip
            for body in bodies:
                content = body.get("content", {}).get("application/json", {})
                if "example" in content:
                    assert VALIDATOR.errors(content["example"], content["schema"]) == []
                    checked += 1
    assert checked == 14


def test_every_order_in_list_shape_validates(client: httpx.Client) -> None:
    offset, seen = 0, 0
    while True:
        params = {"order_by": "id", "direction": "ASC", "limit": 50, "offset": offset}
        answer = client.get("/customer-orders", params=params)
        assert_valid("GET", "/customer-orders", answer)
        page = answer.json()["order"]
        seen += len(page["items"])
        offset += 50
        if offset >= page["total"]:
            break
    assert seen == 120


def test_every_order_in_detail_shape_validates(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    ids = emulator.store.order_ids()
    for start in range(0, len(ids), 100):
        body = {"customerOrderIds": ids[start : start + 100]}
        answer = client.post("/customer-orders/batch", json=body)
        assert_valid("POST", "/customer-orders/batch", answer)
    assert_valid("GET", "/customer-orders/{id}", client.get(f"/customer-orders/{ids[0]}"))


@pytest.mark.parametrize(
    ("method", "url", "path", "body"),
    [
        ("GET", "/healthz", "/healthz", None),
        ("GET", "/auth/check", "/auth/check", None),
        ("GET", "/products?limit=50", "/products", None),
        ("GET", "/products/381", "/products/{id}", None),
        ("GET", "/products/1", "/products/{id}", None),
        ("GET", "/customer-orders?limit=0", "/customer-orders", None),
        ("GET", "/customer-orders/999999", "/customer-orders/{id}", None),
        ("PATCH", "/customer-orders/2/status", "/customer-orders/{id}/status", {"status": "paid"}),
        ("DELETE", "/customer-orders/3", "/customer-orders/{id}", None),
        ("POST", "/embed/session", "/embed/session",
         {"tool": "viewer", "origin": "http://localhost:3000", "orderId": 4}),
        ("POST", "/embed/session", "/embed/session",
         {"tool": "viewer", "origin": "https://evil.example", "orderId": 4}),
    ],
)  # fmt: skip
def test_answers_validate(
    client: httpx.Client, method: str, url: str, path: str, body: Any
) -> None:
    assert_valid(method, path, client.request(method, url, json=body))


def test_quantity_answers_validate(emulator: RunningEmulator, client: httpx.Client) -> None:
    order = emulator.store.create_order()
    item = order["productItems"][0]["id"]
    path = "/customer-orders/{orderId}/quantity"
    body = {"items": [{"orderDetailId": item, "quantity": 4}]}
    assert_valid("PATCH", path, client.patch(f"/customer-orders/{order['id']}/quantity", json=body))
    all_path = "/customer-orders/{orderId}/quantity/all"
    url = f"/customer-orders/{order['id']}/quantity/all"
    assert_valid("PATCH", all_path, client.patch(url, json={"quantity": 2}))
    emulator.store.set_status(order["id"], "completed")
    locked = client.patch(url, json={"quantity": 3})
    assert locked.status_code == 409
    assert_valid("PATCH", all_path, locked)


def test_error_answers_validate(emulator: RunningEmulator, emulator_factory: Any) -> None:
    with client_of(emulator, **{"x-alter-access-token": "wrong"}) as client:
        assert_valid("GET", "/customer-orders", client.get("/customer-orders"))
    limited = emulator_factory(scopes=("orders:read",))
    with client_of(limited) as client:
        assert_valid("GET", "/products", client.get("/products"))


def test_preview_answer_is_a_documented_image(client: httpx.Client) -> None:
    path = "/files/public/products/{productId}/{size}"
    assert_valid("GET", path, client.get("/files/public/products/1/medium"))
    assert_valid("GET", path, client.get("/files/public/products/999/medium"))


def test_validator_rejects_what_the_schema_forbids() -> None:
    order = example("order_detail.response")
    order["order"]["orderStatus"] = "pending"
    order["order"]["totalPrice"]["value"] = 1.005
    order["order"]["surprise"] = 1
    schema = {"$ref": "#/components/schemas/OrderEnvelope"}
    problems = "\n".join(VALIDATOR.errors(order, schema))
    assert "'pending' is not one of" in problems
    assert "not a multiple of 0.01" in problems
    assert "unexpected key 'surprise'" in problems
