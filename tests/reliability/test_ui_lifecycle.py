"""`alter-pipeline ui` and its process tree (issue 13, point 1).

SIGINT, SIGTERM and a SIGKILL of the supervisor are tried on a stand-in tree of processes that
ignore SIGINT/SIGTERM/SIGHUP (`ui_tree.py`, the `ProcessGroups` that `ui` uses); `ps` is read
after each signal. One test starts the real `ui` (emulator and `dagster dev`, about 730 MB)
and closes its "terminal" with SIGHUP: the only real `dagster dev` start in the suite.
Refusals (a port taken, no workspace.yaml, no DAGSTER_HOME) start nothing (in this process,
through the real command line; the real test also starts a second `ui` on its taken port).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from alter_pipeline.cli import app

HERE = Path(__file__).parent
PROJECT = HERE.parent.parent
ALTER_PIPELINE = Path(sys.executable).parent / "alter-pipeline"


def ps_processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, pgid, state) of every process, as `ps` shows them."""
    out = subprocess.run(
        ["ps", "-eo", "pid=,ppid=,pgid=,stat="], capture_output=True, text=True, check=True
    ).stdout
    table = {}
    for line in out.splitlines():
        pid, ppid, pgid, state = line.split()
        table[int(pid)] = (int(ppid), int(pgid), state)
    return table


def running(pids: set[int]) -> set[int]:
    """Those of `pids` that `ps` shows running (zombies are dead)."""
    table = ps_processes()
    return {pid for pid in pids if pid in table and not table[pid][2].startswith("Z")}


def in_groups(pgids: set[int]) -> set[int]:
    return {
        pid for pid, (_, pgid, state) in ps_processes().items() if pgid in pgids and state[0] != "Z"
    }


def descendants(root: int) -> set[int]:
    table = ps_processes()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, (ppid, _, _) in table.items() if ppid in frontier} - found
        found |= frontier
    return found


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def stand_in_tree() -> Iterator[tuple[subprocess.Popen[str], set[int]]]:
    supervisor = subprocess.Popen(
        [sys.executable, str(HERE / "ui_tree.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert supervisor.stdout is not None
        ready = supervisor.stdout.readline().split()
        assert ready[:1] == ["ready"], ready
        pgids = {int(p) for p in ready[1:]}

        def all_four() -> set[int] | None:
            members = in_groups(pgids)
            return members if len(members) == 4 else None

        members = wait_for(all_four, 30, "4 stubborn processes")
        yield supervisor, members
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        for pid in running(set(in_groups(pgids))):
            os.kill(pid, signal.SIGKILL)  # never leave a stubborn process behind a failed test


# SIGHUP: the real `ui` below.
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_stops_every_process_even_stubborn_ones(signum: int) -> None:
    with stand_in_tree() as (supervisor, members):
        supervisor.send_signal(signum)
        assert supervisor.wait(timeout=15) == 128 + signum
        assert running(members) == set()  # the supervisor returns only once they are gone
        lines = supervisor.stderr.read().strip().splitlines()
        name = signal.Signals(signum).name
        assert lines == [f"stopped ({name}): the UI, dagster dev and the emulator are down"]


def test_children_never_outlive_a_killed_supervisor() -> None:
    with stand_in_tree() as (supervisor, members):
        supervisor.kill()  # SIGKILL: no handler runs; the reaper sees its pipe close
        supervisor.wait(timeout=5)
        wait_for(lambda: not running(members), 15, "the reaper to stop the orphans")


def run_ui(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ALTER_PIPELINE), "ui", *args], cwd=cwd, env=env or dict(os.environ),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def refused_in_process(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`ui` through the real command line in this process: a refusal starts nothing."""
    monkeypatch.chdir(project_dir)
    for name, value in ui_env(project_dir, **env).items():
        monkeypatch.setenv(name, value)
    # A free emulator port too: another emulator may well be listening on the default 8787.
    result = CliRunner().invoke(app, ["ui", "--emulator-port", str(free_port()), *args])
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    shutil.copy(PROJECT / "workspace.yaml", tmp_path)
    (tmp_path / "home").mkdir()
    shutil.copy(PROJECT / "dagster_home" / "dagster.yaml", tmp_path / "home")
    return tmp_path


def ui_env(project_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, DAGSTER_HOME=str(project_dir / "home"))
    env.update(ALTER_DATA_DIR=str(project_dir / "data"), **extra)
    return env


def assert_refused(result: subprocess.CompletedProcess[str], says: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], lines
    assert "Dagster UI on" not in result.stdout


def test_ui_refuses_a_taken_port(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = refused_in_process(project_dir, monkeypatch, "--port", str(port))
    assert_refused(result, f"port {port} on 127.0.0.1 is already in use")


def test_ui_refuses_to_start_without_workspace_yaml(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project_dir / "workspace.yaml").unlink()
    result = refused_in_process(project_dir, monkeypatch, "--port", str(free_port()))
    assert_refused(result, "workspace.yaml not found")


def test_ui_refuses_a_missing_dagster_home(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = str(project_dir / "nowhere")
    result = refused_in_process(project_dir, monkeypatch, "--port", "0", DAGSTER_HOME=nowhere)
    assert_refused(result, "is not a directory")


@pytest.mark.slow
def test_the_real_ui_stops_its_whole_tree_when_the_terminal_closes(project_dir: Path) -> None:
    key, token = "ui-test-key-51d0e2", "ui-test-token-77a3c9"
    port, emulator_port = free_port(), free_port()
    env = ui_env(project_dir, ALTER_API_KEY=key, ALTER_API_TOKEN=token)
    ui = subprocess.Popen(
        [
            str(ALTER_PIPELINE),
            "ui",
            "--port",
            str(port),
            "--emulator-port",
            str(emulator_port),
            "--orders",
            "20",
        ],
        cwd=project_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert ui.stdout is not None
        wait_for(
            lambda: "Dagster UI on" in (ui.stdout.readline() or "EOF Dagster UI on"), 300, "the UI"
        )
        assert ui.poll() is None, "ui exited instead of announcing the UI"
        # Announced only once the webserver answers.
        assert httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=10).status_code == 200
        tree = descendants(ui.pid)
        assert len(tree) >= 5  # reaper, emulator, dagster dev, code server, webserver, daemon
        for pid in tree:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            assert key not in cmdline and token not in cmdline
        second = run_ui(
            project_dir, "--port", str(port), "--emulator-port", str(free_port()), env=env
        )
        assert_refused(second, f"port {port} on 127.0.0.1 is already in use")

        ui.send_signal(signal.SIGHUP)
        assert ui.wait(timeout=30) == 128 + signal.SIGHUP
        assert running(tree) == set()
    finally:
        if ui.poll() is None:
            ui.kill()
        for pid in running(descendants(ui.pid)):
            os.kill(pid, signal.SIGKILL)
