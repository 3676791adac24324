"""Targeted refresh of a few orders: the hook the rules job calls after changing statuses."""

from alter_pipeline.sync import refresh_orders

__all__ = ["refresh_orders"]
