"""The signing secret never lands in the outbox files, the logs or error messages."""

import base64
import logging
from datetime import timedelta

import pytest
from webhook_helpers import SECRET_ENV, T0, event

from alter_pipeline.webhooks import Outbox, SecretError, deliver_due, ingest, status
from alter_pipeline.webhooks.receiver import Reply


def forms_of(secret: str) -> list[bytes]:
    body = secret.removeprefix("whsec_")
    return [secret.encode(), body.encode(), base64.b64decode(body)]


def test_the_secret_is_absent_from_database_files_and_logs(shop, receiver, script, secret, caplog):
    caplog.set_level(logging.DEBUG)
    rows = [event(1), event(2), event(3)]
    shop.write_events(rows)
    shop.subscribe({"id": "shop", "url": receiver.url})
    script.fail(rows[0]["event_id"], Reply(500))
    script.fail(rows[1]["event_id"], Reply(429, headers={"Retry-After": "1"}))
    ingest(shop.settings, now=T0)
    # An open connection keeps the WAL file from being checkpointed away, so it is read too.
    with Outbox.open(shop.settings.data_dir):
        deliver_due(shop.settings, now=T0)
        deliver_due(shop.settings, now=T0 + timedelta(minutes=1))
        text = repr(status(shop.settings)) + caplog.text
        files = {f.name: f.read_bytes() for f in (shop.settings.data_dir / "webhooks").iterdir()}
    assert {"outbox.sqlite", "outbox.sqlite-wal"} <= set(files)
    for form in forms_of(secret):
        assert form.decode("latin-1") not in text
        for name, content in files.items():
            assert form not in content, name


def test_a_malformed_secret_at_delivery_time_is_reported_without_its_value(
    shop, receiver, monkeypatch
):
    bad = "whsec_dGhpcyBpcyBub3QgbG9uZyBlbm91Z2g="  # valid base64, too short a key
    monkeypatch.setenv(SECRET_ENV, bad)
    shop.write_events([event(1)])
    shop.subscribe({"id": "shop", "url": receiver.url})
    ingest(shop.settings, now=T0)
    report = deliver_due(shop.settings, now=T0)
    (reason,) = report.held.values()
    assert SECRET_ENV in reason and bad not in reason and bad[6:] not in reason
    (endpoint,) = status(shop.settings).endpoints
    assert endpoint.state == "held" and bad not in repr(endpoint)


def test_endpoint_repr_and_errors_carry_the_variable_name_only(secret):
    from alter_pipeline.webhooks.config import Endpoint
    from alter_pipeline.webhooks.delivery import Target

    endpoint = Endpoint("shop", "http://127.0.0.1:1/", ("*",), SECRET_ENV)
    assert secret not in repr(Target(endpoint, endpoint.secret()))
    with pytest.raises(SecretError) as raised:
        Endpoint("x", "http://127.0.0.1:1/", ("*",), "NOT_SET_ANYWHERE").secret()
    assert "NOT_SET_ANYWHERE" in str(raised.value)
