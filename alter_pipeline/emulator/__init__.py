"""A faithful local server of the Alter public API v1 (like stripe-mock or moto).

    from alter_pipeline.emulator import EmulatorConfig, run_emulator

    with run_emulator(EmulatorConfig(orders=500, seed=7)) as emu:
        emu.base_url        # "http://127.0.0.1:54321/public-api/v1"
        emu.key, emu.token  # accepted credentials (emu.headers: both headers)
        emu.store           # state: mutation helpers, snapshot(), counters

It shares no code with the API client (`alter_pipeline.api`), only `alter_pipeline.contract`.
Modules: config (settings), catalog and generate (synthetic data), model and render (records
and their JSON), store (state, queries, mutations), params (validation), auth, embed (JWTs),
png (preview files), faults and throttle (injected failures, rate limit), live (shoppers),
stats (request counters), app (routes), server (serve / run_emulator).
"""

from alter_pipeline.emulator.config import EmulatorConfig
from alter_pipeline.emulator.server import RunningEmulator, run_emulator, serve, start_emulator
from alter_pipeline.emulator.store import OrderQuery, ProductQuery, Store

__all__ = [
    "EmulatorConfig",
    "OrderQuery",
    "ProductQuery",
    "RunningEmulator",
    "Store",
    "run_emulator",
    "serve",
    "start_emulator",
]
