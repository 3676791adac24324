"""Retries, backoff, Retry-After and typed errors, against a scripted server on 127.0.0.1.

The emulator covers plain 5xx faults and rate limiting (see test_client_emulator.py); these are
the cases it does not offer: exact Retry-After forms, HTML and truncated bodies, dropped
connections, per-endpoint retry safety.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from api_testing import KEY, TOKEN, fast_retry
from scripted_server import Reply, ScriptedServer, json_reply

from alter_pipeline.api import (
    AlterClient,
    AuthenticationError,
    InvalidRequestError,
    MissingScopeError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    Timeouts,
    TransportError,
)
from alter_pipeline.contract import example

AUTH_OK = json_reply(200, example("auth_check.response"))
EMBED_OK = json_reply(200, example("embed_session.response"))
DELETE_OK = json_reply(200, example("order_delete.response"))


def embed(client: AlterClient) -> object:
    return client.create_embed_session("customizer", "https://yourstore.com", design_id=123)


# ---- retries ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_status_is_retried_until_success(
    scripted: ScriptedServer, client: AlterClient, status: int
) -> None:
    scripted.on("GET", "/auth/check", json_reply(status, {"message": "busy"}), AUTH_OK)
    assert client.auth_check().ok is True
    assert scripted.count("GET", "/auth/check") == 2
    assert client.stats.snapshot().retries == 1


def test_server_error_after_max_attempts(scripted: ScriptedServer, client: AlterClient) -> None:
    scripted.on("GET", "/auth/check", json_reply(503, {"message": "maintenance"}))
    with pytest.raises(ServerError, match="maintenance") as caught:
        client.auth_check()
    assert caught.value.status == 503
    assert scripted.count("GET", "/auth/check") == 4  # fast_retry: max_attempts=4


def test_backoff_waits_grow_within_the_jitter_ceiling(
    scripted: ScriptedServer,
    make_client: Callable[..., AlterClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    scripted.on("GET", "/auth/check", json_reply(500, {"message": "oops"}))
    client = make_client(scripted.base_url, retry=fast_retry(base_delay=0.02, max_delay=1.0))
    caplog.set_level(logging.INFO, logger="alter_pipeline.api")
    with pytest.raises(ServerError):
        client.auth_check()
    delays = [float(r.getMessage().rsplit(" in ", 1)[1].rstrip("s")) for r in caplog.records
              if r.getMessage().startswith("retrying")]  # fmt: skip
    assert len(delays) == 3
    for attempt, delay in enumerate(delays, start=1):
        assert 0 <= delay <= 0.02 * 2 ** (attempt - 1)


def test_retry_log_names_method_path_status_attempt_and_delay(
    scripted: ScriptedServer, client: AlterClient, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.on("GET", "/customer-orders/7", json_reply(502, {}), json_reply(404, {}))
    caplog.set_level(logging.INFO, logger="alter_pipeline.api")
    with pytest.raises(NotFoundError):
        client.get_order(7)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying")]
    assert line.startswith("retrying GET /customer-orders/7 after 502 (attempt 1 of 4) in ")


@pytest.fixture
def client_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the client asks for on the test's own thread (they still happen: the real
    sleep is called), so a test reads what was waited instead of timing the wall clock."""
    waits: list[float] = []
    real_sleep = time.sleep
    caller = threading.get_ident()

    def recording_sleep(seconds: float) -> None:
        if threading.get_ident() == caller:
            waits.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", recording_sleep)
    return waits


def test_retry_after_seconds_is_honoured(
    scripted: ScriptedServer, client: AlterClient, client_sleeps: list[float]
) -> None:
    limited = json_reply(429, {"message": "slow down"}, **{"Retry-After": "1"})
    scripted.on("GET", "/auth/check", limited, AUTH_OK)
    client.auth_check()
    assert client_sleeps == [1.0]
    assert scripted.count("GET", "/auth/check") == 2


def test_retry_after_http_date_is_honoured(
    scripted: ScriptedServer, client: AlterClient, client_sleeps: list[float]
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=2)
    limited = json_reply(503, {}, **{"Retry-After": format_datetime(when, usegmt=True)})
    scripted.on("GET", "/auth/check", limited, AUTH_OK)
    client.auth_check()
    (waited,) = client_sleeps
    assert 0.9 <= waited <= 2.0  # the date has whole seconds: 1-2 s from now
    assert scripted.count("GET", "/auth/check") == 2


def test_retry_after_beyond_deadline_fails_at_once(
    scripted: ScriptedServer, make_client: Callable[..., AlterClient]
) -> None:
    scripted.on(
        "GET", "/auth/check", json_reply(429, {"message": "quota"}, **{"Retry-After": "60"})
    )
    client = make_client(scripted.base_url, retry=fast_retry(deadline=5.0))
    with pytest.raises(RateLimitedError) as caught:
        client.auth_check()  # no sleep: 60 s would pass the 5 s deadline
    assert caught.value.retry_after == 60.0 and caught.value.status == 429
    assert scripted.count("GET", "/auth/check") == 1


def test_total_deadline_bounds_attempts(
    scripted: ScriptedServer, make_client: Callable[..., AlterClient]
) -> None:
    scripted.on("GET", "/auth/check", json_reply(500, {}))
    retry = fast_retry(max_attempts=1000, base_delay=0.05, max_delay=0.05, deadline=0.5)
    client = make_client(scripted.base_url, retry=retry)
    with pytest.raises(ServerError):
        client.auth_check()
    # at most 0.05 s apart (full jitter) within a 0.5 s deadline: tens of attempts, never
    # the thousand max_attempts allows
    assert 2 <= scripted.count("GET", "/auth/check") <= 100


def test_client_error_is_not_retried(scripted: ScriptedServer, client: AlterClient) -> None:
    scripted.on("PATCH", "/customer-orders/1/status", json_reply(400, {"message": "bad status"}))
    with pytest.raises(InvalidRequestError):
        client.set_order_status(1, "paid")
    assert scripted.count("PATCH", "/customer-orders/1/status") == 1


def test_read_timeout_is_retried_for_reads(
    scripted: ScriptedServer, make_client: Callable[..., AlterClient]
) -> None:
    scripted.on("GET", "/auth/check", Reply(delay=0.5), AUTH_OK)
    client = make_client(scripted.base_url, timeouts=Timeouts(connect=1.0, read=0.1))
    assert client.auth_check().ok
    assert scripted.count("GET", "/auth/check") == 2


def test_dropped_connection_is_retried_for_reads(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    scripted.on(
        "GET",
        "/products/381",
        Reply(drop=True),
        json_reply(200, example("product_detail.response")),
    )
    assert client.get_product(381).id == 381


def test_connection_refused_becomes_transport_error(
    make_client: Callable[..., AlterClient],
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}/public-api/v1")
    with pytest.raises(TransportError, match="ConnectError after 4 attempt"):
        client.auth_check()
    assert client.stats.snapshot().requests == 4


# ---- retry safety per endpoint ---------------------------------------------------------------


def test_embed_session_not_retried_after_5xx(scripted: ScriptedServer, client: AlterClient) -> None:
    scripted.on("POST", "/embed/session", json_reply(503, {"message": "upstream"}), EMBED_OK)
    with pytest.raises(ServerError):
        embed(client)
    assert scripted.count("POST", "/embed/session") == 1


def test_embed_session_not_retried_after_read_timeout(
    scripted: ScriptedServer, make_client: Callable[..., AlterClient]
) -> None:
    scripted.on("POST", "/embed/session", Reply(delay=0.5), EMBED_OK)
    client = make_client(scripted.base_url, timeouts=Timeouts(connect=1.0, read=0.1))
    with pytest.raises(TransportError, match="ReadTimeout after 1 attempt"):
        embed(client)
    assert scripted.count("POST", "/embed/session") == 1


def test_embed_session_retried_after_429(scripted: ScriptedServer, client: AlterClient) -> None:
    scripted.on("POST", "/embed/session", json_reply(429, {}), EMBED_OK)
    assert embed(client).mode == "design"  # type: ignore[attr-defined]
    assert scripted.count("POST", "/embed/session") == 2


def test_embed_session_body_is_as_documented(scripted: ScriptedServer, client: AlterClient) -> None:
    scripted.on("POST", "/embed/session", EMBED_OK)
    client.create_embed_session("viewer", "https://yourstore.com/", order_id=9)
    (hit,) = scripted.hits
    assert hit.json() == {"tool": "viewer", "origin": "https://yourstore.com", "orderId": 9}


def test_status_patch_is_retried_after_5xx(scripted: ScriptedServer, client: AlterClient) -> None:
    scripted.on(
        "PATCH", "/customer-orders/1/status",
        json_reply(500, {}), json_reply(200, example("order_status.response")),
    )  # fmt: skip
    assert client.set_order_status(1, "processing").new_status == "processing"
    assert [hit.json() for hit in scripted.hits] == [{"status": "processing"}] * 2


def test_delete_404_after_ambiguous_attempt_counts_as_deleted(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    scripted.on("DELETE", "/customer-orders/5", json_reply(502, {}), json_reply(404, {}))
    result = client.delete_order(5)
    assert result.success and result.already_deleted and result.order_id == 5


def test_delete_404_on_first_attempt_is_not_found(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    scripted.on("DELETE", "/customer-orders/5", json_reply(404, {"message": "Order not found."}))
    with pytest.raises(NotFoundError, match="Order not found"):
        client.delete_order(5)


def test_delete_404_after_429_is_not_found(scripted: ScriptedServer, client: AlterClient) -> None:
    # A 429 proves the first attempt did nothing, so the 404 is the truth.
    scripted.on("DELETE", "/customer-orders/5", json_reply(429, {}), json_reply(404, {}))
    with pytest.raises(NotFoundError):
        client.delete_order(5)


def test_batch_read_is_retried_and_chunked_by_50(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    def answer(hit: object) -> Reply:
        ids = hit.json()["customerOrderIds"]  # type: ignore[attr-defined]
        order = example("order_detail.response")["order"]
        return json_reply(200, {"orders": [{**order, "id": i} for i in ids]})

    scripted.on("POST", "/customer-orders/batch", json_reply(503, {}), answer)
    orders = client.get_orders(range(1, 121))
    assert [o.id for o in orders] == list(range(1, 121))
    sizes = [len(h.json()["customerOrderIds"]) for h in scripted.hits]
    assert sizes == [50, 50, 50, 20]  # first 50 once refused, then retried


# ---- typed errors ----------------------------------------------------------------------------


def test_401_is_authentication_error(scripted: ScriptedServer, client: AlterClient) -> None:
    scripted.on("GET", "/auth/check", json_reply(401, {"message": "Invalid API credentials."}))
    with pytest.raises(AuthenticationError, match="Invalid API credentials") as caught:
        client.auth_check()
    assert caught.value.status == 401
    assert scripted.count("GET", "/auth/check") == 1


def test_403_names_the_scope_from_the_message(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    body = {"message": "Missing required scope: products:read"}
    scripted.on("GET", "/products/3", json_reply(403, body))
    with pytest.raises(MissingScopeError) as caught:
        client.get_product(3)
    assert caught.value.scope == "products:read"
    assert "products:read" in str(caught.value)


def test_403_falls_back_to_the_documented_scope(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    scripted.on("DELETE", "/customer-orders/3", json_reply(403, {"message": "Forbidden"}))
    with pytest.raises(MissingScopeError) as caught:
        client.delete_order(3)
    assert caught.value.scope == "orders:write"


def test_404_is_not_found(scripted: ScriptedServer, client: AlterClient) -> None:
    scripted.on("GET", "/customer-orders/999", json_reply(404, {"message": "Order not found."}))
    with pytest.raises(NotFoundError, match=r"Order not found.*GET /customer-orders/999 -> 404"):
        client.get_order(999)


@pytest.mark.parametrize("status", [400, 409, 422])
def test_refusals_carry_the_server_message(
    scripted: ScriptedServer, client: AlterClient, status: int
) -> None:
    body = {"message": "Order is locked in status paid."}
    scripted.on("PATCH", "/customer-orders/2/quantity/all", json_reply(status, body))
    with pytest.raises(InvalidRequestError, match="locked in status paid") as caught:
        client.set_all_quantities(2, 3)
    assert caught.value.status == status


def test_429_after_retries_is_rate_limited_with_hint(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    scripted.on("GET", "/auth/check", json_reply(429, {}, **{"Retry-After": "0"}))
    with pytest.raises(RateLimitedError) as caught:
        client.auth_check()
    assert caught.value.retry_after == 0.0
    assert scripted.count("GET", "/auth/check") == 4


HTML_200 = Reply(
    200,
    b"<!doctype html><html><body>Sign in to the Wi-Fi</body></html>",
    content_type="text/html; charset=utf-8",
)
BAD_200_BODIES = {
    "html": HTML_200,
    "empty": Reply(200, b""),
    "cut": Reply(200, b'{"ok": true, "storefrontId": 1'),
    "plain-text": Reply(200, b"ok", content_type="text/plain"),
}


@pytest.mark.parametrize("kind", list(BAD_200_BODIES))
def test_200_without_json_is_retried_for_reads(
    scripted: ScriptedServer, client: AlterClient, kind: str
) -> None:
    scripted.on("GET", "/auth/check", BAD_200_BODIES[kind], AUTH_OK)
    assert client.auth_check().ok is True
    assert scripted.count("GET", "/auth/check") == 2
    assert client.stats.snapshot().retries == 1


def test_html_body_is_protocol_error_after_retries(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    scripted.on("GET", "/auth/check", HTML_200)
    with pytest.raises(ProtocolError, match="HTML") as caught:
        client.auth_check()
    assert caught.value.status == 200
    assert caught.value.content_type == "text/html; charset=utf-8"
    assert caught.value.snippet.startswith("<!doctype html>")
    assert scripted.count("GET", "/auth/check") == 4  # fast_retry: max_attempts=4


def test_non_json_body_is_protocol_error_after_retries(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    scripted.on("GET", "/auth/check", BAD_200_BODIES["plain-text"])
    with pytest.raises(ProtocolError, match="not valid JSON") as caught:
        client.auth_check()
    assert caught.value.snippet == "ok"
    assert scripted.count("GET", "/auth/check") == 4


def test_cut_json_is_protocol_error_after_retries(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    scripted.on("GET", "/auth/check", BAD_200_BODIES["cut"])
    with pytest.raises(ProtocolError, match="not valid JSON"):
        client.auth_check()
    assert scripted.count("GET", "/auth/check") == 4


def test_batch_read_is_retried_after_an_empty_200(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    order = example("order_detail.response")["order"]
    scripted.on(
        "POST", "/customer-orders/batch",
        BAD_200_BODIES["empty"], json_reply(200, {"orders": [{**order, "id": 3}]}),
    )  # fmt: skip
    assert [o.id for o in client.get_orders([3])] == [3]
    assert scripted.count("POST", "/customer-orders/batch") == 2


def test_delete_after_an_html_200_then_404_counts_as_deleted(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    # The proxy's page may hide a delete that happened: the retry's 404 confirms it.
    scripted.on("DELETE", "/customer-orders/5", HTML_200, json_reply(404, {}))
    result = client.delete_order(5)
    assert result.success and result.already_deleted


def test_embed_session_not_retried_after_an_html_200(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    scripted.on("POST", "/embed/session", HTML_200, EMBED_OK)
    with pytest.raises(ProtocolError, match="HTML"):
        embed(client)
    assert scripted.count("POST", "/embed/session") == 1


def test_truncated_body_is_protocol_error_after_retries(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    body = json_reply(200, example("auth_check.response")).body
    scripted.on("GET", "/auth/check", Reply(200, body, truncate_to=20))
    with pytest.raises(ProtocolError, match="truncated body") as caught:
        client.auth_check()
    assert caught.value.snippet == body[:20].decode()
    assert caught.value.content_type == "application/json"
    assert scripted.count("GET", "/auth/check") == 4


def test_body_of_wrong_shape_is_protocol_error(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    scripted.on("GET", "/customer-orders/1", json_reply(200, {"orders": []}))
    with pytest.raises(ProtocolError, match="does not match the contract"):
        client.get_order(1)


def test_html_error_page_keeps_its_status_type(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    scripted.on("GET", "/auth/check", Reply(502, b"<html>Bad gateway</html>", "text/html"))
    with pytest.raises(ServerError, match="Bad gateway"):
        client.auth_check()


# ---- secrets ---------------------------------------------------------------------------------


def test_secrets_absent_from_errors_and_logs(
    scripted: ScriptedServer, client: AlterClient, caplog: pytest.LogCaptureFixture
) -> None:
    # A careless server echoes the credentials back, in errors and in HTML.
    echo = {"message": f"bad key {KEY} with token {TOKEN}"}
    scripted.on("GET", "/auth/check", json_reply(500, echo), json_reply(401, echo))
    scripted.on(
        "GET", "/products/1", Reply(200, f"<html>{KEY}:{TOKEN}</html>".encode(), "text/html")
    )
    caplog.set_level(logging.DEBUG)
    failures: list[BaseException] = []
    for call in (client.auth_check, lambda: client.get_product(1)):
        with pytest.raises(Exception) as caught:
            call()
        failures.append(caught.value)
    texts = [str(f) for f in failures] + [repr(f) for f in failures]
    texts += [getattr(f, "snippet", "") for f in failures] + [
        r.getMessage() for r in caplog.records
    ]
    texts += [repr(client), repr(client.stats)]
    for text in texts:
        assert KEY not in text and TOKEN not in text
    assert "[redacted]" in str(failures[0])


def test_auth_headers_are_sent_except_to_the_public_preview(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    scripted.on("GET", "/auth/check", AUTH_OK)
    scripted.on("GET", "/files/public/products/4/small", Reply(200, b"\x89PNG\r\n", "image/png"))
    client.auth_check()
    preview = client.get_product_preview(4, "small")
    auth_hit, file_hit = scripted.hits
    assert auth_hit.headers["x-alter-access-key"] == KEY
    assert auth_hit.headers["x-alter-access-token"] == TOKEN
    assert "x-alter-access-key" not in file_hit.headers
    assert (preview.content, preview.content_type) == (b"\x89PNG\r\n", "image/png")


def test_non_image_preview_is_protocol_error(scripted: ScriptedServer, client: AlterClient) -> None:
    scripted.on("GET", "/files/public/products/4/big", Reply(200, b"<html/>", "text/html"))
    with pytest.raises(ProtocolError, match="non-image"):
        client.get_product_preview(4, "big")


# ---- stats -----------------------------------------------------------------------------------


def test_stats_count_requests_retries_and_bytes(
    scripted: ScriptedServer, client: AlterClient
) -> None:
    scripted.on("GET", "/auth/check", json_reply(500, {}), AUTH_OK)
    client.auth_check()
    stats = client.stats.snapshot()
    assert (stats.requests, stats.retries) == (2, 1)
    assert stats.bytes == len(b"{}") + len(AUTH_OK.body)
