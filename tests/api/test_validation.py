"""Client-side checks: bad arguments are ValueErrors naming the problem, raised before any
request; and the pure retry helpers (Retry-After parsing, jittered backoff, policy checks)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from api_testing import KEY, TOKEN

from alter_pipeline.api import AlterClient, RetryPolicy, Timeouts
from alter_pipeline.api.retry import parse_retry_after

# Nothing listens here: any request would fail with TransportError, not ValueError.
UNUSED = "http://127.0.0.1:9/public-api/v1"


@pytest.fixture
def offline() -> AlterClient:
    return AlterClient(UNUSED, KEY, TOKEN, retry=RetryPolicy(max_attempts=1))


@pytest.mark.parametrize("limit", [0, 51, -1, True, 10.0])
def test_limit_outside_1_to_50_is_refused(offline: AlterClient, limit: object) -> None:
    with pytest.raises(ValueError, match="limit must be an integer from 1 to 50"):
        offline.list_orders(limit=limit)  # type: ignore[arg-type]


def test_negative_offset_is_refused(offline: AlterClient) -> None:
    with pytest.raises(ValueError, match="offset"):
        offline.list_products(offset=-1)


def test_unknown_status_is_refused(offline: AlterClient) -> None:
    with pytest.raises(ValueError, match="status must be one of shopping_cart, editable"):
        offline.set_order_status(1, "pending")


def test_unknown_sort_field_and_direction_are_refused(offline: AlterClient) -> None:
    with pytest.raises(ValueError, match="order_by"):
        offline.list_orders(order_by="total")
    with pytest.raises(ValueError, match="direction"):
        offline.list_orders(direction="up")


@pytest.mark.parametrize("order_id", [0, -3, "7", True, None])
def test_ids_must_be_positive_integers(offline: AlterClient, order_id: object) -> None:
    with pytest.raises(ValueError, match="order_id must be a positive integer"):
        offline.get_order(order_id)  # type: ignore[arg-type]


def test_embed_needs_exactly_one_resource(offline: AlterClient) -> None:
    with pytest.raises(ValueError, match="exactly one of design_id or order_id"):
        offline.create_embed_session("viewer", "https://shop.example")
    with pytest.raises(ValueError, match="exactly one"):
        offline.create_embed_session("viewer", "https://shop.example", design_id=1, order_id=2)


def test_embed_tool_and_origin_are_checked(offline: AlterClient) -> None:
    with pytest.raises(ValueError, match="tool must be one of viewer, configurator, customizer"):
        offline.create_embed_session("editor", "https://shop.example", design_id=1)
    with pytest.raises(ValueError, match="origin must not have a path"):
        offline.create_embed_session("viewer", "https://shop.example/cart", design_id=1)
    with pytest.raises(ValueError, match="origin must look like"):
        offline.create_embed_session("viewer", "shop.example", design_id=1)


def test_quantities_are_checked(offline: AlterClient) -> None:
    with pytest.raises(ValueError, match="at least one"):
        offline.set_item_quantities(1, {})
    with pytest.raises(ValueError, match="quantity must be an integer >= 1"):
        offline.set_item_quantities(1, {5: 0})
    with pytest.raises(ValueError, match="quantity"):
        offline.set_all_quantities(1, 2.5)  # type: ignore[arg-type]


def test_preview_size_is_checked(offline: AlterClient) -> None:
    with pytest.raises(ValueError, match="size must be one of small, medium, big"):
        offline.get_product_preview(4, "huge")


def test_pager_options_are_checked(offline: AlterClient) -> None:
    with pytest.raises(ValueError, match="limit must be an integer from 2 to 50"):
        offline.iter_order_pages(page_size=1)
    with pytest.raises(ValueError, match="concurrency"):
        offline.iter_order_pages(concurrency=0)
    with pytest.raises(ValueError, match="status"):
        offline.iter_order_pages(order_status="pending")


def test_bad_base_url_is_refused() -> None:
    with pytest.raises(ValueError, match="base_url must be an http"):
        AlterClient("alterproduct.com/public-api/v1", KEY, TOKEN)


def test_malformed_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="api_token contains whitespace") as caught:
        AlterClient(UNUSED, KEY, "secret value\n")
    assert "secret value" not in str(caught.value)


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after("Fri, 20 Nov 2026 12:00:05 GMT", now) == 5.0
    assert parse_retry_after("Fri, 20 Nov 2026 11:00:00 GMT", now) == 0.0  # in the past


@pytest.mark.parametrize("value", [None, "", "soon", "-"])
def test_unreadable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_backoff_is_full_jitter_under_a_doubling_ceiling() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0, rng=random.Random(3))
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        draws = [policy.backoff(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.8  # spread over the whole range, not a fixed delay


def test_policy_and_timeouts_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="deadline"):
        RetryPolicy(deadline=0)
    with pytest.raises(ValueError, match=r"Timeouts\.read"):
        Timeouts(read=0)
