"""A tiny scripted HTTP/1.1 server on 127.0.0.1 for faults the emulator does not produce.

Raw sockets, so a test controls every byte: Retry-After as an HTTP date, HTML bodies, bodies
cut off mid-way, a connection dropped without a reply. Each route has a script of replies
(the last one repeats); a reply may also be a callable of the request. Every response closes
the connection, which keeps the server simple and is valid HTTP/1.1.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BASE_PATH = "/public-api/v1"
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}


@dataclass(frozen=True)
class Hit:
    method: str
    path: str  # without the base path and the query
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (for read timeouts)
    truncate_to: int | None = None  # send only this many body bytes, then close
    drop: bool = False  # close the connection without any reply


def json_reply(status: int, data: Any, **headers: str) -> Reply:
    return Reply(status, json.dumps(data).encode(), headers=dict(headers))


Script = Reply | Callable[[Hit], Reply]


class ScriptedServer:
    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], list[Script]] = {}
        self._lock = threading.Lock()
        self.hits: list[Hit] = []
        self._server: socketserver.ThreadingTCPServer | None = None

    # -- scripting --

    def on(self, method: str, path: str, *replies: Script) -> ScriptedServer:
        with self._lock:
            self._routes[method, path] = list(replies)
        return self

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return sum(1 for hit in self.hits if (hit.method, hit.path) == (method, path))

    def _next(self, hit: Hit) -> Reply:
        with self._lock:
            self.hits.append(hit)
            script = self._routes.get((hit.method, hit.path))
            if not script:
                return json_reply(404, {"message": f"no route {hit.method} {hit.path}"})
            step = script.pop(0) if len(script) > 1 else script[0]
        return step(hit) if callable(step) else step

    # -- lifecycle --

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{BASE_PATH}"

    def __enter__(self) -> ScriptedServer:
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                hit = _read_request(self.rfile)
                if hit is not None:
                    _write_reply(self.connection, owner._next(hit))

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


def _read_request(rfile: Any) -> Hit | None:
    request_line = rfile.readline().decode("latin-1").strip()
    if not request_line:
        return None
    method, target, _ = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    while (line := rfile.readline().decode("latin-1").strip()) != "":
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = rfile.read(int(headers.get("content-length", "0") or 0))
    url = urlsplit(target)
    path = url.path.removeprefix(BASE_PATH) or "/"
    return Hit(method, path, dict(parse_qsl(url.query)), headers, body)


def _write_reply(connection: socket.socket, reply: Reply) -> None:
    if reply.delay:
        time.sleep(reply.delay)
    if reply.drop:
        connection.close()
        return
    lines = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}"]
    if reply.content_type:
        lines.append(f"Content-Type: {reply.content_type}")
    lines += [f"{name}: {value}" for name, value in reply.headers.items()]
    lines += [f"Content-Length: {len(reply.body)}", "Connection: close", "", ""]
    body = reply.body if reply.truncate_to is None else reply.body[: reply.truncate_to]
    # OSError: the client gave up already (a timeout test); nothing to do.
    with contextlib.suppress(OSError):
        connection.sendall("\r\n".join(lines).encode("latin-1") + body)
