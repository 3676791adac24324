"""Change detection between lake snapshots: the `order_events` table and `orders_history`."""
