import dagster as dg

from alter_pipeline.definitions import defs


def test_definitions_load_with_every_job_schedule_and_sensor():
    jobs = {
        "sync_job",
        "analytics_job",
        "apply_rules_job",
        "deliver_webhooks_job",
        "maintenance_job",
    }
    assert {defs.resolve_job_def(name).name for name in jobs} == jobs
    assert {s.name for s in defs.schedules} == {
        "sync_schedule",
        "reconcile_schedule",
        "analytics_schedule",
        "maintenance_schedule",
    }
    assert {s.name for s in defs.sensors} == {
        "order_events_sensor",
        "rules_sensor",
        "inbound_events_sensor",
        "analytics_automation_sensor",
    }


def test_every_asset_has_a_description_and_a_group():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key.to_user_string()} has no description"
        assert node.group_name != "default", f"{key.to_user_string()} has no group"


def test_schedules_and_sensors_are_off_until_enabled():
    for schedule in defs.schedules:
        assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    for sensor in defs.sensors:
        assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
