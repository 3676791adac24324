import pytest

from alter_pipeline.events.schema import EVENT_TYPES
from alter_pipeline.webhooks.config import (
    SubscriptionsError,
    load_subscriptions,
    parse_subscriptions,
)
from alter_pipeline.webhooks.signing import SecretError, secret_from_env

VALID = """\
endpoints:
  - id: shop-backend
    url: http://127.0.0.1:9000/hooks/alter
    events: ["order.*"]
    secret_env: SHOP_WEBHOOK_SECRET   # holds a whsec_... secret
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SubscriptionsError) as raised:
        parse_subscriptions(text, source="webhooks.yaml")
    return [str(p) for p in raised.value.problems]


def test_the_documented_example_parses_with_defaults():
    (endpoint,) = parse_subscriptions(VALID).endpoints
    assert endpoint.id == "shop-backend"
    assert endpoint.enabled is True
    assert endpoint.timeout_s == 15.0
    assert endpoint.secret_env == "SHOP_WEBHOOK_SECRET"


def test_a_non_http_url_is_reported_with_line_and_column():
    text = VALID.replace("http://127.0.0.1:9000/hooks/alter", "ftp://127.0.0.1/hooks")
    assert problems(text) == ["webhooks.yaml:3:10: endpoints[0].url: only http(s) URLs are allowed"]


def test_every_problem_is_reported_in_file_order():
    text = """\
endpoints:
  - id: a
    url: file:///etc/passwd
    events: ["order.shipped"]
    secret_env: SHOP_WEBHOOK_SECRET
    timeout_s: 0
  - url: http://x
    events: "*"
"""
    assert problems(text) == [
        "webhooks.yaml:3:10: endpoints[0].url: only http(s) URLs are allowed",
        "webhooks.yaml:4:14: endpoints[0].events[0]: unknown event type 'order.shipped' "
        f"(known: {', '.join(EVENT_TYPES)}; wildcards like 'order.*' or '*')",
        "webhooks.yaml:6:16: endpoints[0].timeout_s: must be above 0 and at most 60 seconds",
        "webhooks.yaml:7:5: endpoints[1]: missing `id`",
        "webhooks.yaml:7:5: endpoints[1]: missing `secret_env`",
    ]


def test_duplicate_ids_are_rejected_at_the_second_one():
    text = VALID + VALID.split("\n", 1)[1]
    assert problems(text) == [
        "webhooks.yaml:6:9: endpoints[1].id: duplicate id 'shop-backend' (also endpoints[0])"
    ]


def test_an_unknown_key_is_rejected_so_typos_do_not_pass_silently():
    text = VALID + "    enabeld: false\n"
    (problem,) = problems(text)
    assert problem.startswith("webhooks.yaml:6:5: endpoints[0].enabeld: unknown key")


def test_a_pasted_secret_is_rejected_without_repeating_it():
    pasted = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    (problem,) = problems(VALID.replace("SHOP_WEBHOOK_SECRET", pasted))
    assert "NAME of an environment variable" in problem
    assert pasted not in problem


def test_storefront_scopes_an_endpoint_to_storefronts_yaml_names():
    (one,) = parse_subscriptions(VALID + "    storefront: berlin\n").endpoints
    (two,) = parse_subscriptions(VALID + "    storefront: [berlin, paris]\n").endpoints
    assert one.storefronts == ("berlin",)
    assert two.storefronts == ("berlin", "paris")
    scoped = parse_subscriptions(VALID + "    storefront: berlin\n")
    assert scoped.scoped(lambda names: "paris" in names).endpoints == ()


def test_a_storefront_scope_that_is_not_a_name_is_refused_with_its_line():
    (problem,) = problems(VALID + "    storefront: 12\n")
    assert "webhooks.yaml:6:17: endpoints[0].storefront: expected a storefront name" in problem


def test_yaml_syntax_errors_carry_line_and_column():
    (problem,) = problems("endpoints:\n  - id: a\n    url: [unclosed\n")
    assert problem.startswith("webhooks.yaml:4:1: YAML:")


def test_wildcards_expand_to_the_known_event_types():
    text = VALID.replace('["order.*"]', '["order.*", "product.deleted"]')
    (endpoint,) = parse_subscriptions(text).endpoints
    assert endpoint.event_types == {t for t in EVENT_TYPES if t.startswith("order.")} | {
        "product.deleted"
    }
    (everything,) = parse_subscriptions(VALID.replace('["order.*"]', '"*"')).endpoints
    assert everything.event_types == set(EVENT_TYPES)


def test_a_missing_file_names_the_path_and_the_variable(tmp_path):
    with pytest.raises(SubscriptionsError, match=r"webhooks file not found: .*ALTER_WEBHOOKS_FILE"):
        load_subscriptions(tmp_path / "nope.yaml")


def test_a_missing_secret_variable_is_reported_by_name(monkeypatch):
    monkeypatch.delenv("SHOP_WEBHOOK_SECRET", raising=False)
    (endpoint,) = parse_subscriptions(VALID).endpoints
    with pytest.raises(SecretError) as raised:
        endpoint.secret()
    assert str(raised.value) == (
        "endpoint shop-backend: environment variable SHOP_WEBHOOK_SECRET is not set"
    )


@pytest.mark.parametrize(
    "value", ["not-a-whsec-secret-at-all", "whsec_***not*base64***", "whsec_c2hvcnQ="]
)
def test_a_malformed_secret_is_reported_without_its_value(monkeypatch, value):
    monkeypatch.setenv("SOME_SECRET", value)
    with pytest.raises(SecretError) as raised:
        secret_from_env("SOME_SECRET")
    assert "SOME_SECRET" in str(raised.value)
    assert value not in str(raised.value) and value[6:] not in str(raised.value)
    # no chained decoder error that could quote part of the value
    assert raised.value.__context__ is None or raised.value.__suppress_context__
