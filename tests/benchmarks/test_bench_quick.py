"""Smoke test of the sync benchmark (`make bench-quick`): it runs end to end and produces
figures for every contender. It asserts nothing about speed; docs/performance.md has those."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("wall_s", "orders_per_s", "requests", "peak_rss_mb", "cpu_s")
HAS_DLT = importlib.util.find_spec("dlt") is not None


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    command = [sys.executable, "-m", "benchmarks.syncbench", "--quick", "--results-dir", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "| target | measured | goal | met | note |" in done.stdout
    (data,) = out.glob("*.json")
    return json.loads(data.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("contender", ["alter-pipeline", "naive", "limit", "dlt"])
def test_every_contender_has_figures(results: dict, contender: str) -> None:
    if contender == "dlt" and not HAS_DLT:
        pytest.skip("dlt is not installed: it is in the optional bench extra (.[bench])")
    row = results["summary"]["main"][contender]
    for figure in FIGURES:
        assert row[figure] > 0, (contender, figure, row)


@pytest.mark.slow
def test_syncs_wrote_the_same_counts(results: dict) -> None:
    main = results["summary"]["main"]
    syncs = [row for name, row in main.items() if name in ("alter-pipeline", "dlt", "naive")]
    counts = {(row["orders"], row["items"]) for row in syncs}
    assert len(counts) == 1, main
    assert main["limit"]["requests"] == main["alter-pipeline"]["requests"]


@pytest.mark.slow
def test_incremental_memory_and_analytics_were_measured(results: dict) -> None:
    assert results["incremental"]["requests"] > 0
    assert results["summary"]["big"]["alter-pipeline"]["peak_rss_mb"] > 0
    assert set(results["analytics"]["median_ms"]) >= {"revenue_daily", "top_products"}
    assert {t["target"] for t in results["targets"]} >= {"peak memory", "analytics queries"}


@pytest.mark.slow
def test_rate_limit_and_high_latency_scenarios_were_measured(results: dict) -> None:
    (polite,) = results["rate_limited"]
    assert polite["rate_limit"] == 20 and polite["orders_ok"]
    assert polite["requests"] > 0 and polite["pace"] is not None
    high = results["high_latency"]
    assert high["latency_ms"] == 150
    assert high["alter-pipeline"]["requests"] == high["limit"]["requests"] > 0
    names = {t["target"] for t in results["targets"]}
    assert {"polite at --rate-limit 20", "share of the limit at 150 ms"} <= names


@pytest.mark.slow
def test_incremental_requests_are_accounted_for(results: dict) -> None:
    spent = results["incremental"]["requests_spent"]
    assert sum(spent.values()) == results["incremental"]["requests"], spent
    assert spent["other"] >= 0


@pytest.mark.slow
def test_million_scenario_runs_small(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks.syncbench", "--million", "--quick"]
    command += ["--results-dir", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    (data,) = tmp_path.glob("*-million.json")
    found = json.loads(data.read_text())
    assert found["full"]["orders"] == found["orders_in_store"] == 3_000
    assert found["incremental"]["changes_missing"] == 0
    assert found["incremental"]["requests"] > 0
