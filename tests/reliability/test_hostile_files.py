"""Rules and configuration files written to hurt (issue 13, point 2).

A regex that RE2 accepts but Python's backtracking `re` would spin on for ever is evaluated
with RE2 everywhere, so `rules test` answers; nested aliases, deep nesting and huge values in
rules, webhooks and storefronts files are refused with one line naming the file and line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alter_pipeline.api import AlterClient
from alter_pipeline.cli import app
from alter_pipeline.emulator import RunningEmulator
from alter_pipeline.lake import Lake
from alter_pipeline.rules.evaluate import re2_search
from alter_pipeline.storefronts import StorefrontsError, load_storefronts
from alter_pipeline.sync import run_sync
from alter_pipeline.warehouse import connect, ensure_views

BACKTRACKING = "(.+)+X|alterproduct-never"
RULE_WITH_BACKTRACKING_REGEX = f"""\
rules:
  - id: hang
    when:
      status: {{in: [shopping_cart, editable]}}
      customizer_order_url: {{matches: "{BACKTRACKING}"}}
    then:
      set_status: cancelled
"""


def alias_bomb(top_key: str) -> str:
    """Eight levels of nine aliases: 43 million values once expanded."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "\n".join(lines) + f"\n{top_key}: *a8\n"


def test_a_backtracking_regex_is_searched_in_linear_time() -> None:
    # Python's re needs ~2^40 steps here; RE2 answers at once (the test would time out).
    assert re2_search(BACKTRACKING, "a" * 40) is False
    assert re2_search("(?i)^mug", "MUG with handle") is True


def test_rules_test_with_a_backtracking_regex_answers(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with AlterClient(emulator.base_url, emulator.key, emulator.token) as client:
        run_sync(client, Lake(data), now=emulator.store.now())
    ensure_views(data)
    (tmp_path / "rules.yaml").write_text(RULE_WITH_BACKTRACKING_REGEX)
    with connect(data) as con:
        (cart_id, url) = con.execute(
            "select order_id, customizer_order_url from orders where status = 'shopping_cart' "
            "and length(customizer_order_url) >= 30 limit 1"
        ).fetchone()
    assert "X" not in url  # so that `(.+)+X` backtracks over the whole of it
    command = [sys.executable, "-m", "alter_pipeline.cli", "rules", "test", "rules.yaml"]
    env = dict(os.environ, ALTER_DATA_DIR=str(data))
    result = subprocess.run(
        [*command, "--order", str(cart_id)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "hang" in result.stdout and "no match" in result.stdout.lower(), result.stdout


FILES = {
    "rules": ("rules.yaml", ("rules", "check", "rules.yaml")),
    "webhooks": ("webhooks.yaml", ("webhooks", "check", "webhooks.yaml")),
}
HOSTILE = {
    "alias-bomb": (alias_bomb("rules_or_endpoints"), r"\d+:\d+: aliases expand to more than"),
    "deep-nesting": ("x: " + "[" * 200 + "]" * 200 + "\n", r"1:\d+: nested deeper than 50"),
    "huge-value": ("x: " + "a" * 200_000 + "\n", r"1:4: a value of 200000 characters"),
    "huge-file": ("# padding\n" * 120_000, r"1:1: the file is 1200000 bytes"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
@pytest.mark.parametrize("which", list(FILES))
def test_a_hostile_file_is_one_line_naming_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str, kind: str
) -> None:
    import re

    monkeypatch.chdir(tmp_path)
    name, args = FILES[which]
    text, says = HOSTILE[kind]
    (tmp_path / name).write_text(text)
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    problem_lines = [line for line in lines if not re.fullmatch(r"\d+ problems? in .*", line)]
    assert len(problem_lines) == 1 and re.search(name + r":" + says, lines[0]), lines
    assert len(result.stderr) < 500  # the value is never echoed


def test_rules_check_refuses_an_alias_bomb_in_a_subprocess(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(alias_bomb("rules"))
    result = subprocess.run(
        [sys.executable, "-m", "alter_pipeline.cli", "rules", "check", "rules.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "aliases expand to more than" in result.stderr


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_hostile_storefronts_file_is_one_line_naming_file_and_line(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "storefronts.yaml"
    text, says = HOSTILE[kind]
    path.write_text(text)
    with pytest.raises(StorefrontsError, match=r"storefronts\.yaml:" + says) as raised:
        load_storefronts(path)
    assert len(str(raised.value)) < 300 and "\n" not in str(raised.value)
