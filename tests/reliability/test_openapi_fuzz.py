"""Schemathesis against the emulator, from the contract's OpenAPI document: generated requests
(valid and invalid) to every operation never get a server error, and every answer conforms to
the document (status code, content type, body schema)."""

from __future__ import annotations

import json
from importlib import resources

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from alter_pipeline.emulator import RunningEmulator

DOCUMENT = json.loads(
    resources.files("alter_pipeline.contract").joinpath("openapi.json").read_text("utf-8")
)
schema = schemathesis.openapi.from_dict(DOCUMENT)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@schema.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_generated_requests_get_no_server_error_and_conforming_answers(
    case: schemathesis.Case, emulator: RunningEmulator
) -> None:
    case.call_and_validate(base_url=emulator.base_url, headers=emulator.headers, checks=CHECKS)
