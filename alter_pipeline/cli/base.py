"""What every verb of the command line shares: the consoles, settings, and `guarded`, which
turns a failure into one line on stderr and an exit code (2 for bad input or configuration,
1 when the run failed); the root command's `--debug` shows the traceback instead."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from alter_pipeline.config import ConfigError, Settings

console = Console()
errors = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


class UsageProblem(Exception):
    """Bad input from the person at the keyboard: exit code 2."""


class RunFailed(Exception):
    """The work itself failed: exit code 1."""


INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what shells report for Ctrl-C
INTERRUPTED = "interrupted: nothing was committed, the previous snapshot stays current"


# The root command's `--debug`, set by its callback at the start of every invocation (so one
# invocation's flag never outlives it, as a module-level dict's did between CliRunner calls).
_debug: ContextVar[bool] = ContextVar("alter_pipeline_cli_debug", default=False)


def set_debugging(debug: bool) -> None:
    _debug.set(debug)


def debugging() -> bool:
    return _debug.get()


def hush_dropped_interrupts() -> None:
    """Leave a Ctrl-C that Python dropped unprinted. Raised inside a finalizer (SQLAlchemy's
    pool has GC callbacks), its exception goes to `sys.unraisablehook`, which prints
    "Exception ignored" and a traceback; the sync notices the signal anyway (its latch,
    assets/interrupts.py) and the command ends with the one interrupted line. Every other
    unraisable exception is printed as before."""
    printing = sys.unraisablehook

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        kind = unraisable.exc_type
        # Dagster's interrupt error is matched by name: the CLI does not import Dagster to start.
        if (
            issubclass(kind, KeyboardInterrupt)
            or kind.__name__ == "DagsterExecutionInterruptedError"
        ):
            return
        printing(unraisable)

    sys.unraisablehook = hook


def guarded(action: Callable[[], T]) -> T:
    """Run `action`, turning known failures into one line on stderr and an exit code."""
    try:
        return action()
    except KeyboardInterrupt:
        if debugging():
            raise
        errors.print(INTERRUPTED, highlight=False)
        raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
    except (UsageProblem, ConfigError) as problem:
        _fail(problem, 2)
    except RunFailed as failure:
        _fail(failure, 1)
    except Exception as error:  # the client's typed errors and anything unforeseen
        _fail(error, _exit_code_for(error))
    raise AssertionError("unreachable")


def _exit_code_for(error: Exception) -> int:
    # 0.3 s to import (the client package, httpx; python -X importtime): paid only on an error
    from alter_pipeline.api.errors import AlterAPIError

    return 1 if isinstance(error, AlterAPIError) else 2 if isinstance(error, ValueError) else 1


def _fail(error: Exception, code: int) -> None:
    if debugging():
        raise error
    message = escape(_storage_failure(error) or str(error))
    errors.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def _storage_failure(error: Exception) -> str | None:
    """One line for a failure of Dagster's own storage (SQLAlchemy prints the SQL statement
    and a link over a dozen lines); None for any other error."""
    if not type(error).__module__.startswith("sqlalchemy"):
        return None
    cause = getattr(error, "orig", None) or error
    reason = (str(cause).strip().splitlines() or [""])[0]
    home = os.environ.get("DAGSTER_HOME", "dagster_home")
    return (
        f"Dagster's storage in {home} failed: {type(cause).__name__}: {reason} "
        "(a full disk? a file it cannot write?)"
    )


def settings() -> Settings:
    return Settings.from_env()
