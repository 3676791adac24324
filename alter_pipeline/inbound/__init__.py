"""Inbound webhooks: payment and shop platforms tell the bridge that an order was paid,
refunded or shipped, and the rules engine moves the Alter order.

config.py reads `inbound.yaml` (one entry per source), verify.py checks each platform's
signature scheme on the raw body, inbox.py is the durable SQLite inbox every verified request
is written to before the server answers 2xx, server.py is the starlette app and its runners;
`alter-pipeline inbound` is alter_pipeline/cli/inbound.py. No Dagster here: `inbound_events_sensor`
lives in alter_pipeline/sensors.py and the rules that act on events in alter_pipeline/rules/.
"""

from alter_pipeline.inbound.config import InboundConfig, InboundConfigError, Source, load_inbound
from alter_pipeline.inbound.inbox import Inbox

__all__ = ["InboundConfig", "InboundConfigError", "Inbox", "Source", "load_inbound"]
