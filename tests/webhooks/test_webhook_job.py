"""The Dagster job: one op ingests then delivers, counts in its output metadata."""

import dagster as dg
from webhook_helpers import event

from alter_pipeline.jobs import build_deliver_webhooks_job
from alter_pipeline.resources import LakeResource

deliver_webhooks_job = build_deliver_webhooks_job()


def execute(shop):
    return deliver_webhooks_job.execute_in_process(
        resources={"lake": LakeResource(data_dir=str(shop.settings.data_dir))},
        raise_on_error=False,
    )


def output_metadata(result) -> dict:
    (output,) = [e for e in result.all_node_events if e.is_successful_output]
    return {k: v.value for k, v in output.step_output_data.metadata.items()}


def test_the_job_ingests_delivers_and_reports_counts(shop, receiver):
    shop.write_events([event(1), event(2), event(3)])
    shop.subscribe({"id": "shop", "url": receiver.url})
    result = execute(shop)
    assert result.success
    metadata = output_metadata(result)
    assert metadata["queued"] == 3 and metadata["delivered"] == 3 and metadata["retrying"] == 0
    assert len(receiver.received) == 3


def test_the_job_fails_when_an_endpoint_has_no_secret(shop, monkeypatch):
    monkeypatch.delenv("SHOP_WEBHOOK_SECRET", raising=False)
    shop.subscribe({"id": "shop", "url": "http://127.0.0.1:1/"})
    result = execute(shop)
    assert not result.success
    (failure,) = [e for e in result.all_node_events if e.is_step_failure]
    assert "SHOP_WEBHOOK_SECRET is not set" in str(failure.step_failure_data.error.message)


def test_the_job_skips_quietly_without_a_subscriptions_file(shop):
    result = execute(shop)
    assert result.success and "skipped" in output_metadata(result)


def test_the_job_loads_in_definitions_with_the_lake_resource():
    defs = dg.Definitions(jobs=[deliver_webhooks_job], resources={"lake": LakeResource()})
    assert defs.resolve_job_def("deliver_webhooks_job").name == "deliver_webhooks_job"
