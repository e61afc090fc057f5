"""The static dashboard: one self-contained HTML page (Jinja2) with inline SVG charts (pygal).

Nothing on the page is fetched when it is opened: pygal's tooltips script (a CDN link by
default) is switched off, the charts are inlined as SVG, and the sort/filter script and the
styles are part of the template.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pygal
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from pygal.style import Style

from securecase.domain.metrics import Metrics
from securecase.render.report import report_data

TEMPLATE = "dashboard.html.j2"
SEVERITY_COLOURS = ("#7b1e1e", "#d9480f", "#f59f00", "#1c7ed6", "#868e96", "#adb5bd")
_STYLE = Style(
    background="transparent",
    plot_background="transparent",
    font_family="system-ui, sans-serif",
    colors=("#d9480f", "#2f9e44"),
)
_SEVERITY_STYLE = Style(
    background="transparent",
    plot_background="transparent",
    font_family="system-ui, sans-serif",
    colors=SEVERITY_COLOURS,
)


def _chart_config(chart: Any) -> Any:
    chart.config.js = []  # no script from the network; the SVG stays static
    chart.config.disable_xml_declaration = True
    chart.config.style = _STYLE
    chart.config.height = 300
    chart.config.legend_at_bottom = True
    return chart


def _svg(chart: Any) -> Markup:
    # pygal builds the SVG through its own XML writer (labels escaped): safe to inline.
    return Markup(chart.render(is_unicode=True))  # noqa: S704


def charts(data: Mapping[str, Any]) -> dict[str, Markup]:
    """The page's charts as inline SVG: weekly trend, severity mix, MTTR per severity."""
    trend = _chart_config(pygal.Bar(x_label_rotation=45, show_minor_x_labels=True))
    trend.title = "Findings appeared and fixed per week"
    trend.x_labels = [w["week"] for w in data["weekly"]]
    trend.add("appeared", [w["appeared"] for w in data["weekly"]])
    trend.add("fixed", [w["fixed"] for w in data["weekly"]])

    mix = _chart_config(pygal.Pie(inner_radius=0.45))
    mix.config.style = _SEVERITY_STYLE
    mix.title = "Open findings by severity"
    for severity, count in data["open_findings"].items():
        mix.add(severity, count)

    mttr = _chart_config(pygal.HorizontalBar())
    mttr.config.style = _SEVERITY_STYLE
    mttr.title = "Mean days to resolve, by severity"
    for severity, spread in data["mttr_days"].items():
        mttr.add(severity, spread["mean"] or 0)
    return {"trend": _svg(trend), "mix": _svg(mix), "mttr": _svg(mttr)}


def render_dashboard(metrics: Metrics, links: Mapping[str, str], *, title: str) -> str:
    """The dashboard page; ``links`` maps a case key to the URL of its case file."""
    env = Environment(
        loader=PackageLoader("securecase.render", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    data = report_data(metrics)
    return env.get_template(TEMPLATE).render(
        title=title, data=data, charts=charts(data), links=links
    )
