"""Bad input from people, through the real command line (`alter_pipeline.cli.app`): rules and
webhook files with every kind of mistake, bad environment values, SQL errors. Each is one clear
line per problem on stderr (a file check adds a one-line count), exit code 2, and no traceback
unless `--debug`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alter_pipeline.cli import app
from alter_pipeline.lake import Lake, schemas
from alter_pipeline.lake.flatten import flatten_orders
from alter_pipeline.warehouse import ensure_views

SECRET = "whsec_" + "A" * 44  # a well-formed secret: 32 bytes of base64

GOOD_RULES = """\
rules:
  - id: cancel-stale-carts
    when:
      status: {in: [shopping_cart, editable]}
      age: {gt: 30d}
    then:
      set_status: cancelled
"""
GOOD_WEBHOOKS = """\
endpoints:
  - id: shop
    url: http://127.0.0.1:9/hooks
    events: ["order.*"]
    secret_env: SHOP_WEBHOOK_SECRET
"""


def rules_with(old: str, new: str) -> str:
    assert old in GOOD_RULES
    return GOOD_RULES.replace(old, new)


def webhooks_with(old: str, new: str) -> str:
    assert old in GOOD_WEBHOOKS
    return GOOD_WEBHOOKS.replace(old, new)


@dataclass(frozen=True)
class Mistake:
    id: str
    args: tuple[str, ...]
    says: str  # regex the first stderr line matches
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    problems: int = 1  # lines naming a problem (a file check adds its count line)


RULES_CHECK = ("rules", "check", "rules.yaml")
HOOKS_CHECK = ("webhooks", "check", "webhooks.yaml")

MISTAKES = [
    # ---- rules files
    Mistake("rules-missing-file", RULES_CHECK, r"rules\.yaml:1:1: No such file"),
    Mistake("rules-empty-file", RULES_CHECK, r"rules\.yaml:1:1: .*", {"rules.yaml": ""}),
    Mistake("rules-yaml-syntax", RULES_CHECK, r"rules\.yaml:\d+:\d+: ",
            {"rules.yaml": rules_with("[shopping_cart, editable]", "[shopping_cart, editable")}),
    Mistake("rules-not-a-mapping", RULES_CHECK, r"rules\.yaml:1:1: ",
            {"rules.yaml": "- just\n- a list\n"}),
    Mistake("rules-invalid-utf8-id", RULES_CHECK, r"rules\.yaml:2:9: rule id must be",
            {"rules.yaml": rules_with("cancel-", "caf\udce9").encode(errors="surrogateescape")}),
    Mistake("rules-unknown-field", RULES_CHECK, r"rules\.yaml:5:7: unknown field 'agee'.*'age'",
            {"rules.yaml": rules_with("age:", "agee:")}),
    Mistake("rules-unknown-status", RULES_CHECK, r"rules\.yaml:7:19: .*'canceled'",
            {"rules.yaml": rules_with("set_status: cancelled", "set_status: canceled")}),
    Mistake("rules-bad-duration", RULES_CHECK, r"rules\.yaml:5:17: .*not a duration",
            {"rules.yaml": rules_with("30d", "30x")}),
    Mistake("rules-bad-regex", RULES_CHECK, r"rules\.yaml:\d+:\d+: .*regex",
            {"rules.yaml": rules_with("age: {gt: 30d}", "design_name: {matches: '(unclosed'}")}),
    Mistake("rules-forbidden-move", RULES_CHECK, r"rules\.yaml:\d+:\d+: .*not allowed",
            {"rules.yaml": rules_with("set_status: cancelled", "set_status: completed")}),
    Mistake("rules-duplicate-id", RULES_CHECK, r"rules\.yaml:\d+:\d+: .*duplicate",
            {"rules.yaml": GOOD_RULES + GOOD_RULES.split("rules:\n", 1)[1]}),
    Mistake("rules-wrong-operator", RULES_CHECK, r"rules\.yaml:\d+:\d+: .*contains",
            {"rules.yaml": rules_with("age: {gt: 30d}", "total_value: {contains: x}")}),
    Mistake("rules-wrong-value-type", RULES_CHECK, r"rules\.yaml:\d+:\d+: .*total_value",
            {"rules.yaml": rules_with("age: {gt: 30d}", "total_value: {gt: lots}")}),
    Mistake("rules-apply-bad-file", ("rules", "apply", "--rules", "rules.yaml"),
            r"rules\.yaml:5:7: unknown field", {"rules.yaml": rules_with("age:", "agee:")}),
    Mistake("rules-test-bad-now", ("rules", "test", "rules.yaml", "--now", "yesterday"),
            r"error: --now must be an ISO timestamp", {"rules.yaml": GOOD_RULES}),
    # ---- webhook subscriptions files
    Mistake("webhooks-missing-file", HOOKS_CHECK, r"error: .*webhooks\.yaml"),
    Mistake("webhooks-yaml-syntax", HOOKS_CHECK, r"error: webhooks\.yaml:\d+:\d+: ",
            {"webhooks.yaml": webhooks_with('["order.*"]', '["order.*"')}),
    Mistake("webhooks-not-http", HOOKS_CHECK, r"error: webhooks\.yaml:3:10: .*only http\(s\)",
            {"webhooks.yaml": webhooks_with("http://127.0.0.1:9", "ftp://127.0.0.1:9")}),
    Mistake("webhooks-credentials-in-url", HOOKS_CHECK, r"error: webhooks\.yaml:3:10: ",
            {"webhooks.yaml": webhooks_with("http://127", "http://user:pw@127")}),
    Mistake("webhooks-unknown-event", HOOKS_CHECK, r"error: webhooks\.yaml:4:14: .*shipped",
            {"webhooks.yaml": webhooks_with("order.*", "order.shipped")}),
    Mistake("webhooks-bad-timeout", HOOKS_CHECK, r"error: webhooks\.yaml:\d+:\d+: .*timeout_s",
            {"webhooks.yaml": GOOD_WEBHOOKS + "    timeout_s: 600\n"}),
    Mistake("webhooks-no-secret-env", HOOKS_CHECK, r"error: webhooks\.yaml:\d+:\d+: .*secret_env",
            {"webhooks.yaml": webhooks_with("    secret_env: SHOP_WEBHOOK_SECRET\n", "")}),
    Mistake("webhooks-duplicate-id", HOOKS_CHECK, r"error: webhooks\.yaml:\d+:\d+: .*duplicate",
            {"webhooks.yaml": GOOD_WEBHOOKS + GOOD_WEBHOOKS.split("endpoints:\n", 1)[1]}),
    Mistake("webhooks-deliver-bad-file", ("webhooks", "deliver"), r"error: webhooks\.yaml:4:14",
            {"webhooks.yaml": webhooks_with("order.*", "order.shipped")}),
    Mistake("webhooks-replay-bad-since", ("webhooks", "replay", "--since", "last week"),
            r"error: .*--since", {"webhooks.yaml": GOOD_WEBHOOKS}),
    Mistake("webhooks-secret-malformed", ("webhooks", "deliver"), r"error: .*SHOP_WEBHOOK_SECRET",
            {"webhooks.yaml": GOOD_WEBHOOKS}, {"SHOP_WEBHOOK_SECRET": "hunter2"}),
    # ---- environment
    Mistake("env-url-malformed", ("auth", "check"), r"error: ALTER_API_BASE_URL must be",
            env={"ALTER_API_BASE_URL": "localhost:8787/public-api/v1"}),
    Mistake("env-url-not-http", ("sync",), r"error: ALTER_API_BASE_URL must be",
            env={"ALTER_API_BASE_URL": "ftp://example.com/api"}),
    Mistake("env-url-malformed-rules-apply", ("rules", "apply", "--rules", "rules.yaml"),
            r"error: ALTER_API_BASE_URL must be", {"rules.yaml": GOOD_RULES},
            {"ALTER_API_BASE_URL": "not a url"}),
    Mistake("env-empty-key", ("auth", "check"), r"error: ALTER_API_KEY is empty",
            env={"ALTER_API_KEY": ""}),
    Mistake("env-blank-token", ("sync",), r"error: ALTER_API_TOKEN is empty",
            env={"ALTER_API_TOKEN": "   "}),
    Mistake("env-key-with-spaces", ("auth", "check"), r"error: api_key contains whitespace",
            env={"ALTER_API_KEY": "my key"}),
    Mistake("dotenv-malformed-line", ("auth", "check"), r"error: .*\.env:2: expected NAME=value",
            {".env": "ALTER_API_KEY=k\nthis is not an assignment\n"}),
    # ---- SQL
    Mistake("sql-syntax", ("query", "selec 1"), r"error: SQL error: .*syntax"),
    Mistake("sql-unknown-table", ("query", "select * from nope"), r"error: SQL error: .*nope"),
    Mistake("sql-unknown-column", ("query", "select nope from orders"),
            r"error: SQL error: .*nope"),
    Mistake("sql-bad-cast", ("query", "select 'abc'::integer"), r"error: SQL error: .*abc"),
    Mistake("sql-write-refused", ("query", "drop view orders"), r"error: query only reads"),
    Mistake("sql-parquet-no-output", ("query", "select 1", "--format", "parquet"),
            r"error: --format parquet needs --output FILE"),
    Mistake("sql-parquet-syntax", ("query", "selec 1", "--format", "parquet", "-o", "x.parquet"),
            r"error: SQL error: .*syntax"),
    Mistake("report-before-analytics", ("report",), r"error: no revenue_daily, .* run "
            r"`alter-pipeline analytics` first"),
]  # fmt: skip

BASE_ENV = {
    "ALTER_API_BASE_URL": "http://127.0.0.1:9/public-api/v1",
    "ALTER_API_KEY": "key-for-bad-input-tests",
    "ALTER_API_TOKEN": "token-for-bad-input-tests",
    "ALTER_RULES_FILE": "rules.yaml",
    "ALTER_WEBHOOKS_FILE": "webhooks.yaml",
    "SHOP_WEBHOOK_SECRET": SECRET,
}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with a small warehouse and no stray `.env`."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    with Lake(data).write() as writer:
        writer.table("orders", schemas.ORDERS).write(flatten_orders([]).orders)
    ensure_views(data)
    for name, value in {**BASE_ENV, "ALTER_DATA_DIR": str(data),
                        "DAGSTER_HOME": str(tmp_path / "home")}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    return tmp_path


def invoke(workdir: Path, mistake: Mistake, *extra: str):
    for name, content in mistake.files.items():
        target = workdir / name
        target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)
    return CliRunner(env=mistake.env).invoke(app, [*extra, *mistake.args])


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.id for m in MISTAKES])
def test_bad_input_is_one_clear_line_and_exit_2(workdir: Path, mistake: Mistake) -> None:
    result = invoke(workdir, mistake)
    output = result.stdout + result.stderr
    assert result.exit_code == 2, output
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and re.search(mistake.says, lines[0]), lines
    counted = [line for line in lines if re.fullmatch(r"\d+ problems? in .*", line)]
    assert len(lines) == mistake.problems + len(counted), lines


def test_rules_apply_with_a_malformed_url_is_one_line_not_a_traceback(workdir: Path) -> None:
    mistake = next(m for m in MISTAKES if m.id == "env-url-malformed-rules-apply")
    result = invoke(workdir, mistake)
    assert result.exit_code == 2 and not isinstance(result.exception, ValueError)


def test_debug_shows_the_traceback_of_bad_input(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mistake = next(m for m in MISTAKES if m.id == "env-url-malformed")
    result = invoke(workdir, mistake, "--debug")
    assert result.exit_code != 0
    assert type(result.exception).__name__ == "ConfigError"
