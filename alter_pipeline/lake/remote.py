"""The lake on object storage (S3 and any other pyarrow filesystem URL).

Layout under the lake's URL::

    snapshots/<snapshot_id>/<table>/[<partition>/]part-*.parquet   a snapshot's files
    snapshots/<snapshot_id>/manifest.json                           written last of them
    CURRENT                                                         {"snapshot_id": ...}

A snapshot becomes current when one write overwrites CURRENT. An object write is atomic on S3
and S3 reads are strongly consistent, so a reader sees the old snapshot or the new one. On S3
that write is conditional (a compare-and-swap, see `set_current`): `If-Match` on the ETag of
the CURRENT the writer read before uploading, or `If-None-Match: *` for a lake's first
snapshot; S3 answers 412 when another writer switched CURRENT meanwhile, and nothing is
published. pyarrow cannot send those headers, so this one request goes through boto3 (the
`s3` extra). A store that refuses conditional writes gets today's check-then-write, with a
warning. Objects of a snapshot CURRENT never named are garbage that a later writer
collects. `Lake` (snapshot.py) drives this module: it stages snapshots in a local mirror and
publishes them here.

A local directory as `file://` URL works too (CURRENT is then replaced by a rename), handy for
a shared volume; any other pyarrow filesystem URL (gs://, abfs://, hdfs://) goes through the
same calls, but only S3 (moto) and local files are tested.

Credentials come from the standard AWS variables, read by pyarrow's S3 client itself
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_DEFAULT_REGION or
AWS_REGION, AWS_ENDPOINT_URL for S3-compatible servers: pyarrow 26 honours all of them), or
from its default chain (~/.aws, instance profiles).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import pyarrow.fs as pafs

if TYPE_CHECKING:  # DuckDB is imported where used: loading the code location skips it
    import duckdb

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
# Object-store requests are latency-bound: keep several in flight.
TRANSFER_THREADS = 8
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

# Reuse(relative path, size) -> a local file with those bytes, or None.
Reuse = Callable[[str, int], Path | None]


def is_remote(url_or_path: str) -> bool:
    """Whether `ALTER_DATA_DIR` names an object store rather than a local directory."""
    # A one-letter scheme is a Windows drive ("C:\\data"), not a URL.
    return len(urlsplit(url_or_path).scheme) > 1


def redact(url: str) -> str:
    """`url` without user info or query, which may hold credentials: fit for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{parts.path}"


def scrub(text: str, url: str = "") -> str:
    """`text` with every secret it might quote (the AWS secret key and session token, a
    password in the URL) masked."""
    secrets = [os.environ.get(name, "") for name in SECRET_ENV]
    secrets.append(urlsplit(url).password or "")
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def object_store(url: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and base path of `url` (s3://bucket/prefix, gs://..., ...)."""
    failure = ""
    try:
        filesystem, path = pafs.FileSystem.from_uri(url)
    except (OSError, ValueError) as error:  # ArrowInvalid is a ValueError
        # Raised outside the handler, so the original (which may quote the URL) is not chained.
        failure = scrub(str(error), url)
    if failure:
        raise ValueError(f"cannot open the lake at {redact(url)}: {failure}")
    return filesystem, path.rstrip("/")


@dataclass(frozen=True)
class Pointer:
    """CURRENT as one writer read it: the snapshot it named (None: no CURRENT yet) and the
    object's ETag (None when the store was read without one), the version a compare-and-swap
    of CURRENT is conditional on."""

    snapshot_id: str | None
    etag: str | None = None


class CurrentMoved(Exception):
    """CURRENT no longer is what the writer read: another writer published. `now` is the
    snapshot it names now, when known."""

    def __init__(self, now: str | None) -> None:
        super().__init__(now)
        self.now = now


# S3's answers to a failed condition: 412, or 409 when a concurrent conditional write to the
# same key is still in progress (the other writer is about to win).
_CONDITION_FAILED = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
# How S3-compatible servers that lack conditional writes refuse the headers.
_CONDITIONS_REFUSED = frozenset({"NotImplemented", "InvalidArgument", "InvalidRequest"})


class RemoteStore:
    """The object-store side of one lake: snapshot transfers and the CURRENT pointer."""

    def __init__(self, url: str) -> None:
        self.url = url
        # False once the store refused a conditional write: later publishes skip the attempt.
        self._conditional = True

    @cached_property
    def _opened(self) -> tuple[pafs.FileSystem, str]:
        # On first use, not in Lake(): resolving a bucket's region may take a request.
        return object_store(self.url)

    @property
    def fs(self) -> pafs.FileSystem:
        return self._opened[0]

    @property
    def base(self) -> str:
        return self._opened[1]

    @property
    def location(self) -> str:
        return redact(self.url)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def snapshot_url(self, snapshot_id: str) -> str:
        """Where a reader (DuckDB) finds the snapshot: a URL without credentials."""
        if self.is_local:
            return self.path("snapshots", snapshot_id)
        return f"{urlsplit(self.url).scheme}://{self.path('snapshots', snapshot_id)}"

    # ---- the pointer ---------------------------------------------------------------------

    def current_id(self) -> str | None:
        data = self.read_bytes(CURRENT)
        return None if data is None else json.loads(data)["snapshot_id"]

    def read_current(self) -> Pointer:
        """CURRENT with its ETag (from S3, when boto3 is installed), to publish against."""
        s3 = self._s3 if self._conditional else None
        if s3 is None:
            return Pointer(self.current_id())
        bucket, key = s3
        try:
            reply = self._boto.get_object(Bucket=bucket, Key=key)
            data = reply["Body"].read()
        except self._boto.exceptions.NoSuchKey:
            return Pointer(None)
        except Exception as error:  # botocore's errors share no base with OSError
            raise self._os_error("read", error) from None
        return Pointer(json.loads(data)["snapshot_id"], reply.get("ETag"))

    def set_current(self, snapshot_id: str, expected: Pointer | None = None) -> None:
        """Switch CURRENT to `snapshot_id`, provided it is still `expected` (as read by
        `read_current`); else `CurrentMoved`, and CURRENT is left as the other writer set it.

        On S3 a conditional PUT decides, atomically: of two writers racing from one CURRENT
        exactly one wins. Elsewhere (a store that refuses conditional writes, boto3 not
        installed, other schemes) CURRENT is re-read and compared just before the write, which
        leaves a window of a few milliseconds in which two writers both switch."""
        data = json.dumps({"snapshot_id": snapshot_id}).encode()
        if expected is not None and self._can_swap(expected) and self._put_if(data, expected):
            return
        if expected is not None and (now := self.current_id()) != expected.snapshot_id:
            raise CurrentMoved(now)
        if not self.is_local:
            self.write_bytes(CURRENT, data)  # one object write: the atomic switch
            return
        # A local file is rewritten in place: write beside it and rename over it instead.
        staged = f"{CURRENT}.{uuid.uuid4().hex}"
        self.write_bytes(staged, data)
        self.fs.move(self.path(staged), self.path(CURRENT))

    def _can_swap(self, expected: Pointer) -> bool:
        # An ETag to match, or no CURRENT to create; a Pointer read without boto3 has neither.
        known = expected.etag is not None or expected.snapshot_id is None
        return known and self._conditional and self._s3 is not None

    def _put_if(self, data: bytes, expected: Pointer) -> bool:
        """The conditional PUT of CURRENT: True once written; False when the store refused
        the condition (the caller falls back); `CurrentMoved` when the condition failed."""
        assert self._s3 is not None
        bucket, key = self._s3
        condition = (
            {"IfMatch": expected.etag} if expected.etag is not None else {"IfNoneMatch": "*"}
        )
        try:
            self._boto.put_object(Bucket=bucket, Key=key, Body=data, **condition)
            return True
        except self._boto.exceptions.ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _CONDITION_FAILED or status == 412:
                moved = True
            elif code in _CONDITIONS_REFUSED or status == 501:
                moved = False
            else:
                raise self._os_error("write", error) from None
        except Exception as error:  # connection failures: botocore's own hierarchy
            raise self._os_error("write", error) from None
        if moved:
            raise CurrentMoved(self.current_id())
        self._conditional = False
        log.warning(
            "the object store at %s refuses conditional writes: CURRENT is switched by "
            "check-then-write, so two writers switching in the same instant may both succeed "
            "(the last one wins); run one writer per lake",
            self.location,
        )
        return False

    @cached_property
    def _s3(self) -> tuple[str, str] | None:
        """Bucket and key of CURRENT when the lake is on S3 and boto3 can write it
        conditionally; None otherwise (with a warning, once, when only boto3 is missing)."""
        if urlsplit(self.url).scheme != "s3":
            return None
        try:
            import boto3  # noqa: F401  (optional: the `s3` extra)
        except ImportError:
            log.warning(
                "boto3 is not installed: CURRENT at %s is switched by check-then-write, "
                "without a compare-and-swap; pip install 'alter-pipeline[s3]'",
                self.location,
            )
            return None
        bucket, _, prefix = self.base.partition("/")
        return bucket, f"{prefix}/{CURRENT}" if prefix else CURRENT

    @cached_property
    def _boto(self) -> Any:
        import boto3  # optional (the `s3` extra), and 0.3 s to import: only when publishing

        return boto3.client("s3", **_boto_options(self.url))

    def _os_error(self, verb: str, error: Exception) -> OSError:
        # botocore's messages name the bucket and key, never the secret; scrubbed anyway.
        detail = scrub(f"{type(error).__name__}: {error}", self.url)
        return OSError(f"could not {verb} {CURRENT} at {self.location}: {detail}")

    def manifest(self, snapshot_id: str) -> dict[str, Any] | None:
        data = self.read_bytes("snapshots", snapshot_id, MANIFEST)
        return None if data is None else json.loads(data)

    def read_bytes(self, *parts: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(self.path(*parts)) as stream:
                return stream.read()
        except FileNotFoundError:
            return None

    def write_bytes(self, relative: str, data: bytes) -> None:
        with self._output(self.path(relative)) as out:
            out.write(data)

    def _output(self, path: str) -> Any:
        if self.is_local:  # object stores have no directories to create
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        return self.fs.open_output_stream(path)

    # ---- snapshots -----------------------------------------------------------------------

    def snapshot_ids(self) -> list[str]:
        selector = pafs.FileSelector(self.path("snapshots"), allow_not_found=True)
        infos = self.fs.get_file_info(selector)
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

    def upload_snapshot(
        self, local_dir: Path, snapshot_id: str, parent_id: str | None, carried: set[str]
    ) -> None:
        """Upload a staged snapshot, its manifest last. Files in `carried` (relative paths)
        are the parent's own files: copied server-side from the parent's objects."""
        files = sorted(
            f.relative_to(local_dir).as_posix()
            for f in local_dir.rglob("*")
            if f.is_file() and f.name != MANIFEST
        )
        target = ("snapshots", snapshot_id)

        def transfer(relative: str) -> None:
            if relative in carried and parent_id is not None:
                destination = self.path(*target, relative)
                if self.is_local:
                    self.fs.create_dir(destination.rsplit("/", 1)[0], recursive=True)
                self.fs.copy_file(self.path("snapshots", parent_id, relative), destination)
            else:
                self._upload(local_dir / relative, self.path(*target, relative))

        _run_all(transfer, files)
        self._upload(local_dir / MANIFEST, self.path(*target, MANIFEST))

    def download_snapshot(self, snapshot_id: str, target: Path, reuse: Reuse) -> None:
        """Copy a published snapshot into the new local directory `target`; files the
        mirror already holds (`reuse`) are hard-linked instead of downloaded."""
        prefix = self.path("snapshots", snapshot_id)
        selector = pafs.FileSelector(prefix, recursive=True, allow_not_found=True)
        files = [i for i in self.fs.get_file_info(selector) if i.type == pafs.FileType.File]
        if not any(i.path == f"{prefix}/{MANIFEST}" for i in files):
            raise FileNotFoundError(f"{self.location}: snapshot {snapshot_id} is incomplete")

        def fetch(info: pafs.FileInfo) -> None:
            relative = info.path[len(prefix) + 1 :]
            local = target / relative
            local.parent.mkdir(parents=True, exist_ok=True)
            known = reuse(relative, info.size)
            if known is not None:
                os.link(known, local)
                return
            with self.fs.open_input_stream(info.path) as source, open(local, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())  # a mirrored snapshot is as durable as a written one

        _run_all(fetch, files)

    def delete_snapshot(self, snapshot_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):  # another writer's collection was first
            self.fs.delete_dir(self.path("snapshots", snapshot_id))

    def collect_garbage(self, keep: int, current_id: str) -> list[str]:
        """Delete snapshots older than the current one, except the current one's `keep - 1`
        nearest ancestors. Newer ones are left alone: another writer may be uploading one.
        Older ones outside that chain were never published (or no longer current): CURRENT
        can no longer come to name them. Returns the deleted ids."""
        kept = self._ancestry(current_id, keep)
        doomed = [s for s in self.snapshot_ids() if s < current_id and s not in kept]
        _run_all(self.delete_snapshot, doomed)
        return doomed

    def _ancestry(self, snapshot_id: str, length: int) -> set[str]:
        chain: list[str] = []
        cursor: str | None = snapshot_id
        while cursor is not None and len(chain) < length:
            chain.append(cursor)
            manifest = self.manifest(cursor)
            cursor = manifest.get("parent") if manifest else None
        return set(chain)

    def _upload(self, local: Path, remote_path: str) -> None:
        with open(local, "rb") as source, self._output(remote_path) as out:
            shutil.copyfileobj(source, out, 1 << 20)


def _boto_options(url: str) -> dict[str, str]:
    """boto3's client settings for the same endpoint and region as pyarrow's client: the URL's
    `endpoint_override`, `scheme` and `region` options first, then the AWS variables."""
    options: dict[str, str] = {}
    query = dict(parse_qsl(urlsplit(url).query))
    endpoint = query.get("endpoint_override") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        has_scheme = "://" in endpoint
        options["endpoint_url"] = (
            endpoint if has_scheme else f"{query.get('scheme', 'https')}://{endpoint}"
        )
    region = (
        query.get("region") or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    )
    if region:
        options["region_name"] = region
    return options


def _run_all(task: Callable[[Any], None], items: Iterable[Any]) -> None:
    """Run `task` over `items` on a few threads (pyarrow I/O releases the GIL). The first
    failure cancels what has not started and is raised once the running ones have stopped."""
    items = list(items)
    if len(items) <= 1:
        for item in items:
            task(item)
        return
    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        futures = [pool.submit(task, item) for item in items]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


# ---- DuckDB ------------------------------------------------------------------------------

_httpfs_unavailable = False  # once INSTALL has failed, later connections skip the attempt


def attach_to_duckdb(con: duckdb.DuckDBPyConnection, url: str) -> str:
    """Make `con` able to read the lake at `url`; returns how: "local" (a plain path),
    "httpfs" (DuckDB's own S3 reader, with a temporary secret from the AWS variables) or
    "fsspec" (DuckDB reads through pyarrow's client, wrapped by fsspec)."""
    store = RemoteStore(url)
    if store.is_local:
        return "local"
    scheme = urlsplit(url).scheme
    if scheme == "s3" and os.environ.get("AWS_ACCESS_KEY_ID") and _load_httpfs(con):
        _create_s3_secret(con, f"s3://{store.base}")
        return "httpfs"
    _register_arrow_filesystem(con, store.fs, scheme)
    return "fsspec"


def _load_httpfs(con: duckdb.DuckDBPyConnection) -> bool:
    import duckdb

    global _httpfs_unavailable
    if _httpfs_unavailable:
        return False
    try:
        con.execute("LOAD httpfs")
        return True
    except duckdb.Error:
        pass
    try:
        con.execute("INSTALL httpfs")
        con.execute("LOAD httpfs")
        return True
    except duckdb.Error:
        _httpfs_unavailable = True  # not installed, and no way to download it (offline)
        return False


def s3_secret_sql(scope: str) -> str:
    """A TEMPORARY secret (never written to a database file) from the AWS variables."""
    env = os.environ
    options = {
        "TYPE": "s3",
        "KEY_ID": env.get("AWS_ACCESS_KEY_ID", ""),
        "SECRET": env.get("AWS_SECRET_ACCESS_KEY", ""),
        "SESSION_TOKEN": env.get("AWS_SESSION_TOKEN", ""),
        # The same precedence as pyarrow's client, so both talk to one region.
        "REGION": env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "",
        "SCOPE": scope,
    }
    endpoint = urlsplit(env.get("AWS_ENDPOINT_URL", ""))
    if endpoint.netloc:
        options["ENDPOINT"] = endpoint.netloc  # DuckDB wants it without the scheme
        options["URL_STYLE"] = "path"
        options["USE_SSL"] = "true" if endpoint.scheme == "https" else "false"
    body = ", ".join(
        f"{key} {value}" if key in ("TYPE", "USE_SSL") else f"{key} '{_quote(value)}'"
        for key, value in options.items()
        if value
    )
    return f"CREATE OR REPLACE TEMPORARY SECRET alter_lake ({body})"


def _create_s3_secret(con: duckdb.DuckDBPyConnection, scope: str) -> None:
    import duckdb

    failure = ""
    try:
        con.execute(s3_secret_sql(scope))
    except duckdb.Error as error:
        # DuckDB quotes the statement in its errors: mask it, and do not chain the original.
        failure = scrub(str(error))
    if failure:
        raise RuntimeError(f"DuckDB refused the S3 secret for {scope}: {failure}")


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _register_arrow_filesystem(
    con: duckdb.DuckDBPyConnection, filesystem: pafs.FileSystem, scheme: str
) -> None:
    try:
        from fsspec.implementations.arrow import ArrowFSWrapper
    except ImportError:
        raise RuntimeError(
            "DuckDB cannot load its httpfs extension here, and reading the lake through "
            "pyarrow needs fsspec: pip install 'alter-pipeline[s3]'"
        ) from None

    class SchemeWrapper(ArrowFSWrapper):
        # DuckDB routes the URLs whose scheme is the wrapper's protocol; ArrowFSWrapper
        # answers pyarrow's type name, which differs for some ("gs" URLs, "gcs" type).
        protocol = scheme

    if scheme in con.list_filesystems():
        con.unregister_filesystem(scheme)  # another lake's filesystem: replaced
    con.register_filesystem(SchemeWrapper(filesystem, skip_instance_cache=True))
