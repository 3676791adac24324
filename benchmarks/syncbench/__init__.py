"""Sync benchmark: alter-pipeline side by side with dlt, a naive baseline and the raw-fetch
limit, on one emulator with the same data. Run it as `make bench` (full) or `make bench-quick`
(`python -m benchmarks.syncbench --quick`); see docs/performance.md for the figures.
"""
