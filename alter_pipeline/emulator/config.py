"""Settings of one emulator instance: data size and seed, credentials, knobs, clock.

Field names mirror the `alter-pipeline emulator` flags (`--orders` -> `orders`, ...), so the CLI
builds an `EmulatorConfig` directly from its options.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from alter_pipeline.contract import SCOPES

if TYPE_CHECKING:
    from alter_pipeline.emulator.faults import Fault

# Demo credentials, accepted when neither the config nor the environment names any.
DEMO_KEY = "demo-key-alter-emulator"
DEMO_TOKEN = "demo-token-alter-emulator"
# HS256 secret of embed-session tokens; 32+ bytes so PyJWT does not warn about a short key.
DEMO_EMBED_SECRET = "alter-emulator-embed-session-secret-v1"
# The fixed 'now' the synthetic history ends at: the same seed gives the same bytes every day.
REFERENCE_NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
DEFAULT_ALLOWED_ORIGINS: tuple[str, ...] = ("https://yourstore.com", "http://localhost:3000")
# Root of the `customizerOrderURL` links (the customizer app, not this API).
DEFAULT_APP_URL = "https://alterproduct.com"
BASE_PATH = "/public-api/v1"


@dataclass(frozen=True)
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    orders: int = 1000
    products: int = 12
    seed: int = 7
    key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = SCOPES
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    # Extra fault modes, tried after the built-in 5xx one (see faults.py).
    faults: Sequence[Fault] = ()
    rate_limit: float | None = None  # requests per second; None: unlimited
    live: bool = False
    live_rate: float = 5.0  # shopper actions per second in live mode
    now: datetime = REFERENCE_NOW
    # Wall clock of mutations (item updatedAt, new orders); default: `now` + real time elapsed.
    clock: Callable[[], datetime] | None = None
    allowed_origins: tuple[str, ...] = DEFAULT_ALLOWED_ORIGINS
    embed_secret: str = field(default=DEMO_EMBED_SECRET, repr=False)
    storefront_id: int = 12
    user_owner_id: int = 34
    credential_id: int = 56
    app_url: str = DEFAULT_APP_URL
    # Root of product media links; default: the emulator's own base URL, so the links work.
    public_url: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.orders < 0 or self.products < 1:
            problems.append("orders must be >= 0 and products >= 1")
        if not 0.0 <= self.fault_rate <= 1.0:
            problems.append("fault_rate must be between 0 and 1")
        if self.latency_ms < 0:
            problems.append("latency_ms must be >= 0")
        if self.rate_limit is not None and self.rate_limit <= 0:
            problems.append("rate_limit must be > 0 requests per second")
        if self.live_rate <= 0:
            problems.append("live_rate must be > 0")
        unknown = sorted(set(self.scopes) - set(SCOPES))
        if unknown:
            problems.append(f"unknown scopes {unknown}; known: {list(SCOPES)}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class Credentials:
    key: str = field(repr=False)
    token: str = field(repr=False)
    is_demo: bool  # True when the demo pair is in use (then it is printed at start)


def resolve_credentials(config: EmulatorConfig) -> Credentials:
    """Each of key and token: the config's, else ALTER_API_KEY / ALTER_API_TOKEN, else demo."""
    key = config.key or os.environ.get("ALTER_API_KEY") or DEMO_KEY
    token = config.token or os.environ.get("ALTER_API_TOKEN") or DEMO_TOKEN
    return Credentials(key, token, is_demo=(key, token) == (DEMO_KEY, DEMO_TOKEN))
