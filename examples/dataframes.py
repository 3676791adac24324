"""The warehouse as pandas DataFrames, for a notebook or a script.

Run after `make demo` (or any sync and `alter-pipeline analytics`):

    .venv/bin/python examples/dataframes.py

It reads $ALTER_DATA_DIR (default ./data) read-only, so it runs beside a sync, the Dagster UI
or an open DuckDB CLI. Money columns hold exact `decimal.Decimal`s; `.astype(float)` for charts.
"""

from alter_pipeline import warehouse

# Any SQL over the warehouse views: the lake tables and the dbt models.
last_week = warehouse.query(
    "SELECT day, currency, orders, revenue FROM revenue_daily ORDER BY day DESC LIMIT 7"
)
print("revenue, last 7 days with sales:")
print(last_week.to_string(index=False))

# A whole table; parameters are bound, never pasted into the SQL.
orders = warehouse.table("orders")
paid = warehouse.query("SELECT count(*) AS n FROM orders WHERE status = ?", ["paid"])
print(f"\n{len(orders)} orders, {paid['n'].iloc[0]} paid")

# Exact money: pandas sums the Decimals without rounding.
by_status = orders.groupby("status")["total_value"].sum().sort_values(ascending=False)
print("\norder value by status:")
print(by_status.to_string())
