"""Start and drive the benchmark's emulator process (see emulator_proc.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from benchmarks.syncbench.measure import ROOT

SYNC_FULL_CLI = [str(Path(sys.executable).with_name("alter-pipeline")), "sync", "--full"]

SEED = 7
LATENCY_MS = 30.0


@dataclass
class Emulator:
    orders: int
    latency_ms: float = LATENCY_MS
    seed: int = SEED
    rate_limit: float | None = None  # requests per second; None: unlimited

    def __enter__(self) -> Emulator:
        command = [
            sys.executable, "-m", "benchmarks.syncbench.emulator_proc",
            "--orders", str(self.orders), "--seed", str(self.seed),
            "--latency-ms", str(self.latency_ms),
        ]  # fmt: skip
        if self.rate_limit is not None:
            command += ["--rate-limit", str(self.rate_limit)]
        self._proc = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        hello = self._read()
        self.base_url: str = hello["base_url"]
        self.root_url: str = hello["root_url"]
        self.key: str = hello["key"]
        self.token: str = hello["token"]
        self.now: str = hello["now"]
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            self._send({"cmd": "quit"})
            self._proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()

    def mutate(self, fraction: float, seconds: float) -> dict[str, Any]:
        """Simulated shoppers touch `fraction` of the orders over `seconds` of store time."""
        self._send({"cmd": "mutate", "fraction": fraction, "seconds": seconds})
        reply = self._read()
        self.now = reply["now"]
        return reply

    def cli_env(self, data_dir: Path, dagster_home: Path) -> dict[str, str]:
        """The environment `alter-pipeline` runs in against this emulator."""
        return os.environ | {
            "ALTER_API_BASE_URL": self.base_url,
            "ALTER_API_KEY": self.key,
            "ALTER_API_TOKEN": self.token,
            "ALTER_DATA_DIR": str(data_dir),
            "DAGSTER_HOME": str(dagster_home),
        }

    def client_args(self) -> list[str]:
        return ["--base-url", self.base_url, "--key", self.key, "--token", self.token]

    def _send(self, command: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(command) + "\n")
        self._proc.stdin.flush()

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the emulator process exited")
        return json.loads(line)
