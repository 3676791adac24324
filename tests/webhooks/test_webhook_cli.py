"""`alter-pipeline webhooks ...` verbs: summaries, one-line errors, exit codes."""

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from signal_helpers import terminate_or_explain
from typer.testing import CliRunner
from webhook_helpers import event

from alter_pipeline.cli.webhooks import webhooks_app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(webhooks_app, list(args), env={"COLUMNS": "200"})


def test_check_prints_a_summary_of_a_valid_file(shop, secret):
    shop.subscribe({"id": "shop", "url": "http://127.0.0.1:9000/hooks", "events": ["order.*"]})
    result = invoke("check", str(shop.settings.webhooks_file))
    assert result.exit_code == 0, result.output
    assert "1 endpoints, valid" in result.output
    assert "shop (enabled) -> http://127.0.0.1:9000/hooks" in result.output
    assert "$SHOP_WEBHOOK_SECRET set" in result.output
    assert secret not in result.output


def test_check_lists_every_problem_with_line_and_column_and_exits_2(shop):
    shop.settings.webhooks_file.write_text(
        "endpoints:\n  - id: a\n    url: ftp://x\n    events: [nope]\n    secret_env: S\n"
    )
    result = invoke("check", str(shop.settings.webhooks_file))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("webhooks.yaml:3:10: endpoints[0].url: only http(s) URLs are allowed")
    assert "webhooks.yaml:4:14: endpoints[0].events[0]: unknown event type 'nope'" in lines[1]
    assert "Traceback" not in result.output


def test_deliver_takes_in_events_sends_them_and_prints_a_summary(shop, receiver):
    shop.write_events([event(1), event(2)])
    shop.subscribe({"id": "shop", "url": receiver.url})
    result = invoke("deliver")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("queued 2 new deliveries; attempted 2: 2 delivered")
    assert len(receiver.received) == 2


def test_deliver_without_a_subscriptions_file_is_one_line_and_exit_2(shop):
    result = invoke("deliver")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "webhooks file not found" in result.output


def test_deliver_with_a_missing_secret_says_which_variable_and_exits_2(shop, monkeypatch):
    monkeypatch.delenv("SHOP_WEBHOOK_SECRET", raising=False)
    shop.subscribe({"id": "shop", "url": "http://127.0.0.1:1/"})
    result = invoke("deliver")
    assert result.exit_code == 2
    assert "endpoint shop: environment variable SHOP_WEBHOOK_SECRET is not set" in result.output


def test_status_prints_each_endpoint_and_json_on_request(shop, receiver):
    shop.write_events([event(1)])
    shop.subscribe({"id": "shop", "url": receiver.url})
    invoke("deliver")
    table = invoke("status")
    assert table.exit_code == 0 and "shop" in table.output and "enabled" in table.output
    data = json.loads(invoke("status", "--json").output)
    assert data["endpoints"][0]["delivered"] == 1 and data["cursor"] == 1


def test_replay_requeues_and_says_how_many(shop, receiver):
    shop.write_events([event(1)])
    shop.subscribe({"id": "shop", "url": receiver.url})
    invoke("deliver")
    result = invoke("replay", "--since", "2026-11-26T00:00:00Z", "--endpoint", "shop")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("re-queued 1 deliveries since 2026-11-26T00:00:00+00:00")


def test_replay_with_a_bad_time_is_one_line_and_exit_2(shop, secret):
    shop.subscribe({"id": "shop", "url": "http://127.0.0.1:1/"})
    result = invoke("replay", "--since", "last tuesday")
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: --since: expected an ISO-8601 time such as 2026-11-26T10:00:00Z, got 'last tuesday'"
    )


def test_listen_without_its_secret_variable_is_one_line_and_exit_2(monkeypatch):
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    result = invoke("listen", "--secret-env", "NO_SUCH_SECRET")
    assert result.exit_code == 2
    assert result.output.strip() == "error: environment variable NO_SUCH_SECRET is not set"


def test_enable_of_an_endpoint_that_is_not_disabled_is_a_clear_error(shop):
    result = invoke("enable", "shop")
    assert result.exit_code == 2 and "endpoint shop is not disabled" in result.output


def test_importing_the_sub_app_stays_light_for_cli_start_up():
    import subprocess
    import sys

    code = (
        "import sys, alter_pipeline.cli.webhooks; "
        "print(sorted(m for m in ('pyarrow', 'httpx', 'duckdb', 'dagster') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"


def test_debug_on_the_root_command_shows_the_real_exception(shop):
    import typer

    from alter_pipeline.webhooks import SubscriptionsError

    root = typer.Typer()

    @root.callback()
    def main(debug: bool = typer.Option(False, "--debug")) -> None:
        """Stands for alter_pipeline.cli's root command."""

    root.add_typer(webhooks_app, name="webhooks")
    result = runner.invoke(root, ["--debug", "webhooks", "deliver"])
    assert isinstance(result.exception, SubscriptionsError)


def _ignoring_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def test_listen_hears_a_sigterm_sent_on_its_listening_line_though_started_ignoring_it(
    tmp_path: Path,
) -> None:
    """The "listening" line comes once uvicorn has its stop handlers: a supervisor that sends
    SIGTERM on seeing it is heard, also where the process started with SIGTERM ignored (as
    in a process Dagster's runs left so, before jobs_runner put the handlers back)."""
    env = {**os.environ, "SHOP_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"k" * 32).decode()}
    command = [sys.executable, "-X", "faulthandler", "-m", "alter_pipeline.cli"]
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as errors:
        proc = subprocess.Popen(
            [*command, "webhooks", "listen", "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            preexec_fn=_ignoring_sigterm,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    terminate_or_explain(proc, stderr)
    assert line.startswith("listening on http://127.0.0.1:"), line
