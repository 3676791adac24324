"""inbound.yaml: the example parses, and every problem is one FILE:LINE:COL line."""

from __future__ import annotations

from pathlib import Path

import pytest

from alter_pipeline.config import ConfigError
from alter_pipeline.inbound.config import InboundConfigError, load_inbound, parse_inbound

ROOT = Path(__file__).resolve().parents[2]


def problems(text: str) -> list[str]:
    with pytest.raises(InboundConfigError) as caught:
        parse_inbound(text, source="inbound.yaml")
    return caught.value.problems


def test_the_example_file_parses_with_one_source_per_kind():
    config = load_inbound(ROOT / "inbound.example.yaml")
    assert [(s.id, s.kind) for s in config.sources] == [
        ("stripe", "stripe"),
        ("shopify", "shopify"),
        ("shop-backend", "standard-webhooks"),
        ("warehouse-app", "hmac-sha256"),
    ]
    assert config.source("stripe").tolerance_s == 300
    assert config.source("shopify").secret_envs == (
        "SHOPIFY_WEBHOOK_SECRET",
        "SHOPIFY_WEBHOOK_SECRET_OLD",
    )
    plain = config.source("warehouse-app")
    assert (plain.header, plain.encoding, plain.prefix) == ("X-Signature", "hex", "sha256=")
    assert config.max_body_bytes == 1024 * 1024


def test_every_problem_is_listed_with_its_line_and_column():
    text = (
        "sources:\n"
        "  - {id: a, path: /hooks/a, kind: strype, secret_env: A}\n"
        "  - {id: b, path: hooks/b, kind: shopify, secret_env: B, tolerance: 5m}\n"
        "  - {id: c, path: /hooks/a, kind: hmac-sha256, secret_env: C}\n"
        "  - {id: d, path: /hooks/d, kind: stripe, secret_env: 'whsec_abc+def=', colour: red}\n"
    )
    assert problems(text) == [
        "inbound.yaml:2:35: kind: expected one of stripe, shopify, standard-webhooks, hmac-sha256",
        "inbound.yaml:3:19: path: expected a URL path starting with /, e.g. /hooks/stripe",
        "inbound.yaml:3:69: tolerance: a shopify request has no timestamp",
        "inbound.yaml:4:35: hmac-sha256 needs `header`",
        "inbound.yaml:5:73: unknown key 'colour' in a source (allowed: id, path, kind, "
        "secret_env, tolerance, header, encoding, prefix, id_header, storefront)",
    ]


def test_a_secret_pasted_instead_of_a_variable_name_is_refused_without_repeating_it():
    (message,) = problems("sources:\n  - {id: a, path: /a, kind: stripe, secret_env: 'ab+c/d='}\n")
    assert message.startswith("inbound.yaml:2:49: secret_env: expected the NAME of")
    assert "ab+c/d=" not in message


def test_a_path_used_twice_is_a_problem():
    text = (
        "sources:\n"
        "  - {id: a, path: /hooks, kind: shopify, secret_env: A}\n"
        "  - {id: b, path: /hooks, kind: shopify, secret_env: B}\n"
    )
    assert problems(text) == ["inbound.yaml:3:5: path '/hooks' appears twice"]


def test_an_unset_secret_variable_is_named_and_its_value_never_shown():
    config = parse_inbound(
        "sources:\n  - {id: a, path: /a, kind: shopify, secret_env: [NEW, OLD]}\n"
    )
    with pytest.raises(ConfigError, match=r"^inbound source a: environment variable OLD is unset$"):
        config.sources[0].secrets({"NEW": "the-new-secret"})
