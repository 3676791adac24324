"""Fixtures of the object-storage lake tests: a real S3 server (moto) and a bucket per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from s3_server import S3Server, start_s3_server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = start_s3_server()
    yield server
    server.stop()


@pytest.fixture
def s3_url(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """`s3://<fresh bucket>/lake`, with the standard AWS variables pointing at the server
    (and nothing of this machine's own AWS configuration in the way)."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    bucket = s3_server.create_bucket()
    s3_server.requests.clear()
    return f"s3://{bucket}/lake"
