"""`make ui`: a live emulator plus `dagster dev`, each in its own process group, never outliving
the command.

* Before anything starts: the UI and emulator ports must be free, `workspace.yaml` must be in
  the working directory and the Dagster instance must open; otherwise one line and exit 2.
* Each child leads its own process group (`dagster dev` started from a non-interactive parent
  ignores SIGINT/SIGTERM otherwise), with default signal dispositions restored (a parent
  started in the background passes SIGINT ignored on to its children).
* Ctrl-C, SIGTERM and SIGHUP (the terminal closed) stop every group: SIGINT and SIGTERM first,
  SIGKILL after a grace period, within 10 s in all. The exit code is 128 + the signal.
* A reaper process, in a session of its own and deaf to signals, holds a pipe from this one:
  if this process dies without stopping them (SIGKILL, a crash), the pipe closes and the reaper
  stops the groups the same way. So the emulator, `dagster dev`, its code server, webserver and
  daemon never run on with PPID 1.
* The UI is announced only once its webserver answers.
* Credentials reach the emulator through its environment, never its argv (readable by `ps`).
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import cast

from alter_pipeline.config import ConfigError
from alter_pipeline.emulator.config import BASE_PATH, DEMO_KEY, DEMO_TOKEN
from alter_pipeline.instance import resolve_dagster_home

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# SIGINT/SIGTERM, then SIGKILL after this; the whole stop stays under 10 s.
GRACE_S = 6.0
EMULATOR_START_S = 60.0
# dagster dev takes ~7 s to answer on an idle machine; a busy one may need many times that.
UI_START_S = 180.0
_REAP_FLAG = "--reap"
_DONE = "done"


class CannotStart(ConfigError):
    """The UI cannot start here (a port taken, no workspace.yaml, no instance): exit 2."""


class Stopped(BaseException):
    """A stop signal arrived; not an Exception, so no handler on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def run_ui(*, port: int, emulator_port: int, orders: int) -> None:
    home = resolve_dagster_home(os.environ)
    check_can_start(ports=(port, emulator_port), workspace=Path("workspace.yaml"), home=home)
    bin_dir = Path(sys.executable).parent
    env = dict(
        os.environ,
        ALTER_API_BASE_URL=f"http://127.0.0.1:{emulator_port}{BASE_PATH}",
        ALTER_API_KEY=os.environ.get("ALTER_API_KEY") or DEMO_KEY,
        ALTER_API_TOKEN=os.environ.get("ALTER_API_TOKEN") or DEMO_TOKEN,
        ALTER_SCHEDULES_RUNNING="1",
        ALTER_SYNC_CRON=os.environ.get("ALTER_SYNC_CRON", "* * * * *"),
        DAGSTER_HOME=str(home),
    )
    # The emulator reads ALTER_API_KEY/ALTER_API_TOKEN from its environment.
    emulator_cmd = [
        str(bin_dir / "alter-pipeline"), "emulator", "--live", "--port", str(emulator_port),
        "--orders", str(orders),
    ]  # fmt: skip
    dagster_cmd = [str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml", "-p", str(port)]
    with ProcessGroups() as groups:
        # Both start at once: dagster dev takes longest, and its first schedule tick is a
        # minute away, by when the emulator answers.
        emulator = groups.start(emulator_cmd, env)
        dagster = groups.start(dagster_cmd, env)
        wait_until_answers(f"{env['ALTER_API_BASE_URL']}/healthz", emulator, EMULATOR_START_S)
        wait_until_answers(f"http://127.0.0.1:{port}/server_info", dagster, UI_START_S)
        print(f"Dagster UI on http://127.0.0.1:{port} (Ctrl-C stops it and the emulator)")
        sys.stdout.flush()
        ended = groups.wait_any()
        program = Path(str(cast(Sequence[str], ended.args)[0])).name  # started from a list
        raise ChildExited(f"{program} exited with code {ended.returncode}")


class ChildExited(RuntimeError):
    """A child stopped on its own: the run failed (exit 1); the others are stopped too."""


# ---- before starting ------------------------------------------------------------------------


def check_can_start(*, ports: Sequence[int], workspace: Path, home: Path) -> None:
    for port in ports:
        if port_taken(port):
            raise CannotStart(f"port {port} on 127.0.0.1 is already in use (another `ui`?)")
    if not workspace.is_file():
        raise CannotStart(
            f"{workspace} not found in {Path.cwd()}: run `ui` from the project directory"
        )
    check_instance(home)


def port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


def check_instance(home: Path) -> None:
    """The Dagster instance at `home` opens (its storage is created and migrated here, where a
    failure is one line, rather than in three processes at once)."""
    if not home.is_dir():
        raise CannotStart(f"DAGSTER_HOME {home} is not a directory (create it, or unset it)")
    # Imported here: dagster costs ~1 s to import, and only this command needs it.
    import dagster as dg

    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.get_runs_count()
    except Exception as error:  # any storage failure: a full disk, a bad dagster.yaml, ...
        reason = " ".join(str(error).split())[:300]
        raise CannotStart(f"the Dagster instance in {home} cannot be opened: {reason}") from None


# ---- the children ---------------------------------------------------------------------------


def _default_signals() -> None:
    """In the child before exec: default dispositions for the stop signals (SIG_IGN survives
    exec, and Python installs no SIGINT handler over an ignored SIGINT)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


class ProcessGroups:
    """Children, each leading its own process group, stopped together on a stop signal, when
    this block ends, or (through the reaper) when this process dies."""

    def __init__(self, grace_s: float = GRACE_S) -> None:
        self.grace_s = grace_s
        self.children: list[subprocess.Popen[bytes]] = []
        self._reaper: subprocess.Popen[bytes] | None = None
        self._previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}

    def __enter__(self) -> ProcessGroups:
        self._reaper = subprocess.Popen(
            [sys.executable, "-m", "alter_pipeline.ui", _REAP_FLAG, str(self.grace_s)],
            stdin=subprocess.PIPE,
            start_new_session=True,  # out of reach of the terminal's SIGHUP and of killpg
        )
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, _raise_stopped)
        return self

    def start(self, command: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        # A stop signal between fork and bookkeeping would leave a child nobody knows of.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            child = subprocess.Popen(
                list(command), env=dict(env), start_new_session=True, preexec_fn=_default_signals
            )
            self.children.append(child)
            self._tell_reaper(str(child.pid))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return child

    def wait_any(self) -> subprocess.Popen[bytes]:
        """Block until a child exits (or a stop signal raises `Stopped`)."""
        while True:
            for child in self.children:
                if child.poll() is not None:
                    return child
            time.sleep(0.2)

    def __exit__(self, kind: type[BaseException] | None, error: object, tb: object) -> None:
        for signum in STOP_SIGNALS:  # a second Ctrl-C must not cut the stop short
            signal.signal(signum, signal.SIG_IGN)
        try:
            stop_groups([c.pid for c in self.children], self.grace_s, self.children)
            self._tell_reaper(_DONE)
        finally:
            if self._reaper is not None and self._reaper.stdin is not None:
                self._reaper.stdin.close()
                self._reaper.wait(5)
            for number, handler in self._previous.items():
                signal.signal(number, handler if handler is not None else signal.SIG_DFL)

    def _tell_reaper(self, line: str) -> None:
        assert self._reaper is not None and self._reaper.stdin is not None
        self._reaper.stdin.write(f"{line}\n".encode())
        self._reaper.stdin.flush()


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


def stop_groups(
    pgids: Sequence[int],
    grace_s: float,
    children: Sequence[subprocess.Popen[bytes]] = (),
) -> None:
    """SIGTERM to every group (dagster dev then stops its processes in about 3 s), then SIGKILL
    to the groups still alive after `grace_s`; returns once every group is gone."""
    _signal_groups(pgids, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _alive(pgids, children) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal_groups(pgids, signal.SIGKILL)
    deadline = time.monotonic() + 3.0
    while _alive(pgids, children) and time.monotonic() < deadline:
        time.sleep(0.05)


def _signal_groups(pgids: Sequence[int], signum: int) -> None:
    for pgid in pgids:
        with suppress(ProcessLookupError):
            os.killpg(pgid, signum)


def _alive(pgids: Sequence[int], children: Sequence[subprocess.Popen[bytes]]) -> bool:
    for child in children:
        child.poll()  # reap our own children
    return bool(group_members(pgids))


def group_members(pgids: Sequence[int]) -> list[int]:
    """Running (not zombie) processes of these groups. Read from /proc: a zombie still counts
    for kill(-pgid, 0), and an orphan's zombie waits for a PID 1 that may never reap it."""
    proc = Path("/proc")
    if not proc.is_dir():
        return [pgid for pgid in pgids if _group_signalable(pgid)]
    wanted, members = set(pgids), []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        state, pgid = fields[0], int(fields[2])
        if pgid in wanted and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _group_signalable(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until_answers(url: str, child: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Return once `url` answers 200; ChildExited if the child stops first."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            name = Path(str(cast(Sequence[str], child.args)[0])).name  # started from a list
            raise ChildExited(f"{name} exited with code {child.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise ChildExited(f"{url} did not answer within {timeout_s:.0f} s")


@contextmanager
def exit_code_on_stop() -> Iterator[None]:
    """A stop signal ends the command with one line and exit code 128 + the signal."""
    try:
        yield
    except Stopped as stopped:
        name = signal.Signals(stopped.signum).name
        print(f"stopped ({name}): the UI, dagster dev and the emulator are down", file=sys.stderr)
        raise SystemExit(128 + stopped.signum) from None


# ---- the reaper -----------------------------------------------------------------------------


def reap(lines: Iterator[str], grace_s: float) -> None:
    """Collect process group ids until `done` or end of input; at end of input (the parent
    died without stopping them), stop the groups."""
    pgids: list[int] = []
    for line in lines:
        text = line.strip()
        if text == _DONE:
            return
        if text.isdigit():
            pgids.append(int(text))
    stop_groups(pgids, grace_s)


def _reaper_main(grace_s: float) -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    reap(iter(sys.stdin.readline, ""), grace_s)


if __name__ == "__main__" and sys.argv[1:2] == [_REAP_FLAG]:
    _reaper_main(float(sys.argv[2]))
