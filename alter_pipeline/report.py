"""The analytics report: one self-contained HTML file of charts over the dashboard models.

Vega-Altair describes each chart and vl-convert renders it to SVG here, so the file opens
offline (no script, no CDN). Written to $ALTER_DATA_DIR/analytics/report.html after every
refresh of the dbt models, and by `alter-pipeline report`.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

import altair as alt
import duckdb
import pandas as pd
import vl_convert

from alter_pipeline.warehouse import ANALYTICS_DIR, analytics_models

REPORT_FILE = "report.html"
TOP = 10
# Charts need numbers; the report converts money (exact decimals in the models) to floats for
# drawing only.
CHARTS = {
    "revenue_daily": "Revenue by day",
    "order_status_funnel": "Orders by status",
    "top_products": f"Top {TOP} products by revenue",
    "top_materials": "Materials by revenue",
    "abandoned_carts": "Abandoned carts by age",
}


class ReportError(Exception):
    """The models the report draws have not been built yet."""


def report_path(data_dir: Path) -> Path:
    return data_dir / ANALYTICS_DIR / REPORT_FILE


def write_report(data_dir: Path, output: Path | None = None) -> Path:
    """Render every chart from the models' Parquet files into one HTML file."""
    frames = _load(data_dir)
    sections = [_chart_section(name, frames) for name in CHARTS]
    sections.append(_carts_table(frames["abandoned_carts"]))
    target = output or report_path(data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(_page(sections), encoding="utf-8")
    tmp.replace(target)  # a browser reloading the page never reads half a file
    return target


def _load(data_dir: Path) -> dict[str, pd.DataFrame]:
    models = analytics_models(data_dir)
    missing = [name for name in CHARTS if name not in models]
    if missing:
        raise ReportError(
            f"no {', '.join(missing)} in {data_dir / ANALYTICS_DIR}: run `alter-pipeline "
            "analytics` first"
        )
    with duckdb.connect(":memory:") as con:
        return {
            name: con.execute("SELECT * FROM read_parquet(?)", [str(models[name])]).df()
            for name in CHARTS
        }


def _numbers(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    frame = frame.copy()
    for column in columns:
        frame[column] = frame[column].astype("float64")
    frame["storefront"] = frame["storefront_id"].astype("string")
    return frame


def revenue_chart(frame: pd.DataFrame) -> alt.Chart:
    data = _numbers(frame, "revenue")
    data["day"] = pd.to_datetime(data["day"])
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("day:T", title="day (UTC)"),
            y=alt.Y("sum(revenue):Q", title="revenue"),
            color=alt.Color("currency:N"),
            tooltip=["day:T", "currency:N", "sum(revenue):Q", "sum(orders):Q"],
        )
    )


def funnel_chart(frame: pd.DataFrame) -> alt.Chart:
    data = _numbers(frame, "value")
    order = ["shopping_cart", "editable", "processing", "paid", "completed", "cancelled"]
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("sum(orders):Q", title="orders"),
            y=alt.Y("status:N", sort=order, title=None),
            color=alt.Color("storefront:N"),
            tooltip=["status:N", "storefront:N", "orders:Q", "value:Q", "share_pct:Q"],
        )
    )


def top_products_chart(frame: pd.DataFrame) -> alt.Chart:
    data = _numbers(frame, "revenue")
    data["product"] = data["product_name"].fillna(data["product_id"].astype("string"))
    data = data.sort_values("revenue", ascending=False).head(TOP)
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("revenue:Q"),
            y=alt.Y("product:N", sort="-x", title=None),
            color=alt.Color("storefront:N"),
            tooltip=["product:N", "quantity:Q", "revenue:Q", "currency:N", "orders:Q"],
        )
    )


def materials_chart(frame: pd.DataFrame) -> alt.Chart:
    data = _numbers(frame, "revenue")
    data["material"] = data["material"].fillna("(none)")
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("sum(revenue):Q", title="revenue"),
            y=alt.Y("material:N", sort="-x", title=None),
            color=alt.Color("storefront:N"),
            tooltip=["material:N", "quantity:Q", "revenue:Q", "currency:N"],
        )
    )


def carts_chart(frame: pd.DataFrame) -> alt.Chart:
    data = _numbers(frame, "total_value")
    return (
        alt.Chart(data)
        .mark_circle(size=60)
        .encode(
            x=alt.X("age_days:Q", title="age (days)"),
            y=alt.Y("total_value:Q", title="value at stake"),
            color=alt.Color("status:N"),
            tooltip=["order_id:Q", "status:N", "design_name:N", "total_value:Q", "age_days:Q"],
        )
    )


_BUILDERS = {
    "revenue_daily": revenue_chart,
    "order_status_funnel": funnel_chart,
    "top_products": top_products_chart,
    "top_materials": materials_chart,
    "abandoned_carts": carts_chart,
}


def _chart_section(name: str, frames: dict[str, pd.DataFrame]) -> str:
    title = CHARTS[name]
    frame = frames[name]
    if frame.empty:
        body = "<p class='empty'>No rows yet.</p>"
    else:
        chart = _BUILDERS[name](frame).properties(width=640, height=240)
        body = vl_convert.vegalite_to_svg(chart.to_json())
    return (
        f"<section id='{name}'><h2>{html.escape(title)}</h2>"
        f"<p class='source'>model <code>{name}</code>, {len(frame)} rows</p>{body}</section>"
    )


def _carts_table(frame: pd.DataFrame) -> str:
    head = ["order_id", "status", "design_name", "created_at", "total_value", "age_days"]
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in head) + "</tr>"
        for _, row in frame.head(TOP).iterrows()
    )
    header = "".join(f"<th>{c}</th>" for c in head)
    return (
        f"<section id='abandoned_carts_table'><h2>Largest abandoned carts</h2>"
        f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table></section>"
    )


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.source, .generated { color: #666; font-size: 0.85rem; }
table { border-collapse: collapse; font-size: 0.85rem; }
td, th { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; }
"""


def _page(sections: list[str]) -> str:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>alter-pipeline analytics</title>"
        f"<style>{_STYLE}</style></head><body><h1>alter-pipeline analytics</h1>"
        f"<p class='generated'>Generated {generated} from the dbt models "
        "(analytics/ in the repository). Money is drawn as floating point; the models hold "
        f"exact decimals.</p>{''.join(sections)}</body></html>"
    )
