"""A throwaway PostgreSQL server for tests: `initdb` + `postgres` in a temporary directory.

Uses the distribution's server binaries (Debian: /usr/lib/postgresql/<version>/bin). The
server listens on a free loopback TCP port only (no unix socket), requires a password
(scram-sha-256), runs without fsync, and lives until `stop()`.

PostgreSQL refuses to run as root, so under root both programs run as the `postgres` user
(else `nobody`) through `subprocess.Popen(user=..., group=...)`, in a directory owned by it
under the system temp dir (pytest's own tmp dirs are private to root).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROGRAMS = ("initdb", "postgres")
UNPRIVILEGED_USERS = ("postgres", "nobody")
START_TIMEOUT_S = 30.0


class PostgresUnavailable(RuntimeError):
    """No server can be started here; the message says what is missing (a skip reason)."""


@dataclass
class PostgresServer:
    process: subprocess.Popen[bytes]
    root: Path
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    host: str = "127.0.0.1"

    def libpq_env(self) -> dict[str, str]:
        """The standard libpq variables dagster.postgres.yaml reads."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": self.database,
        }

    def connect(self, database: str | None = None) -> Any:
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database or self.database,
            connect_timeout=5,
        )

    def log_tail(self, lines: int = 20) -> str:
        log = self.root / "postgres.log"
        if not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: ends open sessions
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


def find_binaries() -> dict[str, Path]:
    """initdb and postgres from PATH, else from the newest /usr/lib/postgresql/*/bin."""
    found = {name: shutil.which(name) for name in PROGRAMS}
    if all(found.values()):
        return {name: Path(path) for name, path in found.items() if path}
    for bin_dir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if all((bin_dir / name).is_file() for name in PROGRAMS):
            return {name: bin_dir / name for name in PROGRAMS}
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, postgres) not found on PATH or in "
        "/usr/lib/postgresql/*/bin: install the postgresql package"
    )


def _run_as() -> dict[str, Any]:
    """Popen arguments that drop root to an unprivileged user; nothing when not root."""
    if os.geteuid() != 0:
        return {}
    for name in UNPRIVILEGED_USERS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    raise PostgresUnavailable(
        "running as root, which initdb refuses, and no unprivileged user "
        f"({' or '.join(UNPRIVILEGED_USERS)}) exists to run PostgreSQL as"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _owned_dir(run_as: dict[str, Any]) -> Path:
    root = Path(tempfile.mkdtemp(prefix="alter-pg-"))
    if run_as:
        os.chown(root, run_as["user"], run_as["group"])
    return root


def _initdb(initdb: Path, root: Path, user: str, password: str, run_as: dict[str, Any]) -> None:
    pwfile = root / "pwfile"
    pwfile.write_text(password)
    pwfile.chmod(0o600)
    if run_as:
        os.chown(pwfile, run_as["user"], run_as["group"])
    command = [
        str(initdb), "-D", str(root / "data"), "-U", user, "--pwfile", str(pwfile),
        "--auth", "scram-sha-256", "--no-sync", "--encoding", "UTF8", "--locale", "C",
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, **run_as)
    finally:
        pwfile.unlink()
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise PostgresUnavailable(f"initdb refused to create a cluster: {' | '.join(reason)}")


def _launch(postgres: Path, root: Path, port: int, run_as: dict[str, Any]) -> subprocess.Popen:
    command = [
        str(postgres), "-D", str(root / "data"), "-p", str(port),
        "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
        # a throwaway cluster: durability buys nothing, speed does
        "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
    ]  # fmt: skip
    with open(root / "postgres.log", "wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **run_as)


def _wait_ready(server: PostgresServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"postgres exited at start:\n{server.log_tail()}")
        try:
            server.connect("postgres").close()
            return
        except Exception as error:
            if time.monotonic() > deadline:
                message = f"postgres not ready in {START_TIMEOUT_S} s:\n{server.log_tail()}"
                raise RuntimeError(message) from error
            time.sleep(0.1)


def _create_database(server: PostgresServer) -> None:
    connection = server.connect("postgres")
    connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{server.database}"')
    finally:
        connection.close()


def start_postgres(database: str = "alter_dagster", user: str = "alter") -> PostgresServer:
    """Start a fresh server with `database` owned by superuser `user` (random password).

    Raises PostgresUnavailable when this machine cannot run one (the reason names what is
    missing), RuntimeError when a server was created but did not come up.
    """
    binaries = find_binaries()
    run_as = _run_as()
    root = _owned_dir(run_as)
    password = f"pw-{secrets.token_hex(12)}"
    try:
        _initdb(binaries["initdb"], root, user, password, run_as)
        port = _free_port()
        process = _launch(binaries["postgres"], root, port, run_as)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    server = PostgresServer(process, root, port, user, password, database)
    try:
        _wait_ready(server)
        _create_database(server)
    except BaseException:
        server.stop()
        raise
    return server
