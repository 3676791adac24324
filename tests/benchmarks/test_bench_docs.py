"""`python -m benchmarks.syncbench.docs`: a run's figures written between the pages' markers."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.syncbench.docs import END, START, newest_full_run, rewrite


def test_the_figures_replace_only_what_lies_between_the_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"intro\n{START}\nold figures\n{END}\nafter\n")

    rewrite(page, f"{START}\nnew figures\n{END}")

    assert page.read_text() == f"intro\n{START}\nnew figures\n{END}\nafter\n"


def test_a_page_without_markers_is_refused_and_left_alone(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("no markers here\n")

    with pytest.raises(SystemExit, match=r"no <!-- syncbench:results --> .* markers"):
        rewrite(page, f"{START}\nnew\n{END}")
    assert page.read_text() == "no markers here\n"


def test_the_newest_full_run_is_the_days_later_run_and_never_a_million_run(
    tmp_path: Path,
) -> None:
    for name in ("2026-12-04.json", "2026-12-05.json", "2026-12-05-0930.json",
                 "2026-12-06-million.json"):  # fmt: skip
        (tmp_path / name).write_text("{}")

    assert newest_full_run(tmp_path).name == "2026-12-05-0930.json"
