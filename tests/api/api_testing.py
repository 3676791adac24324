"""Shared constants and helpers of the API client tests (a unique module name: the root
`tests/conftest.py` is also called `conftest`)."""

from __future__ import annotations

import random

from alter_pipeline.api import RetryPolicy

KEY = "test-key-5f3a9c"
TOKEN = "test-token-8b2e71d4"


def fast_retry(**overrides: float) -> RetryPolicy:
    """Millisecond backoff so fault tests stay fast; seeded jitter so they are repeatable."""
    settings = {"max_attempts": 4, "base_delay": 0.01, "max_delay": 0.05, "deadline": 10.0}
    settings.update(overrides)
    return RetryPolicy(rng=random.Random(1), **settings)  # type: ignore[arg-type]
