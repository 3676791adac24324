"""Asset group names. Jobs and sensors select assets by them, and the UI shows them: they never
change. Kept apart from the assets so that selecting a group imports nothing of it (the
analytics assets bring dagster-dbt and dbt)."""

SYNC_GROUP = "sync"
ANALYTICS_GROUP = "analytics"
