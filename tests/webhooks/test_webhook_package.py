import importlib
import inspect

import alter_pipeline.webhooks as webhooks

MODULES = ("clock", "config", "delivery", "intake", "monitor", "outbox", "receiver")


def test_package_exports_stay_functions_after_every_submodule_is_imported():
    for name in MODULES:
        importlib.import_module(f"alter_pipeline.webhooks.{name}")
    from alter_pipeline.webhooks import deliver_due, ingest, pending_work, replay, status

    assert all(inspect.isfunction(f) for f in (deliver_due, ingest, pending_work, replay, status))
    assert sorted(webhooks.__all__) == sorted(webhooks._EXPORTS)
