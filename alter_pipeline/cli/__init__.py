"""The command line, one module per verb group: `app` (the root command and `main`, the
console script), `base` (what every verb shares: `guarded`, the exit codes), and `auth`,
`sync`, `query`, `local` (emulator, ui), `maintenance`, `rules`, `webhooks`, `inbound`.

Nothing else in the package imports this one (import-linter checks it). Its exports load on
first use, so importing one verb group (`alter_pipeline.cli.webhooks`) does not load the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "app": "app",
    "main": "app",
    "guarded": "base",
    "RunFailed": "base",
    "UsageProblem": "base",
}
__all__ = ["RunFailed", "UsageProblem", "app", "guarded", "main"]  # the keys of _EXPORTS

if TYPE_CHECKING:
    from alter_pipeline.cli.app import app, main
    from alter_pipeline.cli.base import RunFailed, UsageProblem, guarded


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
