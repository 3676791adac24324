"""What every verb shares: a Ctrl-C Python dropped inside a finalizer stays unprinted."""

import sys
from collections.abc import Iterator

import pytest

from alter_pipeline.cli.base import hush_dropped_interrupts


class RaisesInFinalizer:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __del__(self) -> None:
        raise self.error


@pytest.fixture
def hushed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    hush_dropped_interrupts()
    yield


def test_a_dropped_ctrl_c_prints_nothing(hushed: None, capsys: pytest.CaptureFixture[str]) -> None:
    RaisesInFinalizer(KeyboardInterrupt())
    assert capsys.readouterr().err == ""


def test_any_other_dropped_exception_is_still_printed(
    hushed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    RaisesInFinalizer(ValueError("a real bug"))
    assert "ValueError: a real bug" in capsys.readouterr().err
