"""A real S3-compatible server for tests: moto's server mode on a loopback port.

The lake talks to it over HTTP through pyarrow's own S3 client, as it would to AWS. Every
request is logged (method, key, whether it was a server-side copy, its condition), so tests
can tell an upload from a copy. `refuse_conditional_writes` makes it answer a conditional PUT
with 501 NotImplemented, as S3-compatible servers without conditional writes do.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import boto3
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

FAKE_KEY_ID = "AKIATESTLAKE000000"
REGION = "us-east-1"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # /bucket/key, unquoted
    copy_source: str | None
    condition: str | None = None  # "If-Match: <etag>" or "If-None-Match: *"


@dataclass
class S3Server:
    server: BaseWSGIServer
    thread: threading.Thread
    requests: list[Request] = field(default_factory=list)
    refuse_conditional_writes: bool = False
    # Distinctive, so a test can search files and messages for it.
    secret_key: str = field(default_factory=lambda: f"lake-secret-{uuid.uuid4().hex}")

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables pointing at this server."""
        return {
            "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def create_bucket(self) -> str:
        name = f"lake-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=FAKE_KEY_ID,
            aws_secret_access_key=self.secret_key,
        )

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2")
        return sorted(
            item["Key"]
            for page in pages.paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        )

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


_NOT_IMPLEMENTED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code>'
    b"<Message>A header you provided implies functionality that is not implemented"
    b"</Message></Error>"
)


def _condition(environ: dict[str, Any]) -> str | None:
    for header, name in (("HTTP_IF_MATCH", "If-Match"), ("HTTP_IF_NONE_MATCH", "If-None-Match")):
        if environ.get(header):
            return f"{name}: {environ[header]}"
    return None


def _logging(app: Callable[..., Iterable[bytes]], server: list[S3Server]) -> Callable[..., Any]:
    def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        copy = environ.get("HTTP_X_AMZ_COPY_SOURCE")
        method, condition = environ["REQUEST_METHOD"], _condition(environ)
        s3 = server[0]
        s3.requests.append(
            Request(
                method,
                unquote(environ.get("PATH_INFO", "")),
                unquote(copy) if copy else None,
                condition,
            )
        )
        if s3.refuse_conditional_writes and method == "PUT" and condition:
            start_response("501 Not Implemented", [("Content-Type", "application/xml")])
            return [_NOT_IMPLEMENTED]
        return app(environ, start_response)

    return logged


def start_s3_server() -> S3Server:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on stderr
    holder: list[S3Server] = []  # the app needs the server's settings, made after it
    app = _logging(DomainDispatcherApplication(create_backend_app), holder)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    holder.append(S3Server(server=server, thread=thread))
    thread.start()
    return holder[0]
