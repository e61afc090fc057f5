"""``securecase report`` as JSON data, text, CSV and OpenMetrics text.

``report_data`` is the JSON contract of DESIGN.md ("Metrics and the dashboard") plus a few
keys more (``by_source``, ``by_kind``, ``sla.resolved_with_sla``, ``cases``); every other
output is derived from it so they cannot disagree. The OpenMetrics text is in
:mod:`securecase.render.openmetrics` (prometheus_client is imported only when asked for).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import orjson

from securecase.domain.metrics import Metrics, Spread


def _spread(value: Spread) -> dict[str, Any]:
    return {"mean": value.mean, "median": value.median, "count": value.count}


def report_data(metrics: Metrics) -> dict[str, Any]:
    """The report as JSON-ready data (DESIGN.md's keys first)."""
    return {
        "window": {
            "since": metrics.window.since.isoformat(),
            "until": metrics.window.until.isoformat(),
        },
        "open_cases": metrics.open_cases,
        "open_findings": dict(metrics.open_findings),
        "by_repo": [
            {"repo": r.repo, "open_cases": r.open_cases, "open_findings": dict(r.open_findings)}
            for r in metrics.by_repo
        ],
        "weekly": [
            {"week": w.week, "appeared": w.appeared, "fixed": w.fixed} for w in metrics.weekly
        ],
        "mttr_days": {sev: _spread(s) for sev, s in metrics.mttr_days.items()},
        "mtta_hours": _spread(metrics.mtta_hours),
        "sla": {
            "overdue": metrics.sla.overdue,
            "resolved_within_sla_pct": metrics.sla.resolved_within_sla_pct,
            "resolved_with_sla": metrics.sla.resolved_with_sla,
        },
        "exceptions": {
            "active": metrics.exceptions.active,
            "expiring": metrics.exceptions.expiring,
            "expired": metrics.exceptions.expired,
        },
        "gate": {
            "pr_scans": metrics.gate.pr_scans,
            "blocked": metrics.gate.blocked,
            "block_rate": metrics.gate.block_rate,
            "top_rules": [{"rule": r, "blocked": n} for r, n in metrics.gate.top_rules],
        },
        "exposure": [
            {"advisory": e.advisory, "package": e.package, "repos": e.repos, "cases": e.cases}
            for e in metrics.exposure
        ],
        "by_source": dict(metrics.by_source),
        "by_kind": dict(metrics.by_kind),
        "generated_at": metrics.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cases": [
            {
                "key": c.key,
                "repo": c.repo,
                "status": c.status,
                "decision": c.decision,
                "counts": dict(c.counts),
                "created_at": c.created_at,
                "updated_at": c.updated_at,
            }
            for c in metrics.cases
        ],
    }


def report_json(data: dict[str, Any]) -> str:
    """:func:`report_data` as JSON indented by two spaces, the text ``json.dumps(data,
    indent=2, ensure_ascii=False)`` gives (orjson: the standard library's encoder runs in
    Python when it indents, and a report lists every case)."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode("utf-8")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def report_text(metrics: Metrics) -> str:
    """A short plain-text summary for a terminal or a job log."""
    data = report_data(metrics)
    counts = data["open_findings"]
    lines = [
        f"Window {data['window']['since']} .. {data['window']['until']}",
        f"Open cases: {data['open_cases']}",
        "Open findings: " + ", ".join(f"{n} {sev}" for sev, n in counts.items()),
    ]
    mtta = data["mtta_hours"]
    lines.append(
        f"MTTA: mean {_number(mtta['mean'])} h, median {_number(mtta['median'])} h "
        f"({mtta['count']} case(s))"
    )
    lines.append("MTTR (days, mean/median/count):")
    lines.extend(
        f"  {sev:<8} {_number(s['mean'])} / {_number(s['median'])} / {s['count']}"
        for sev, s in data["mttr_days"].items()
        if s["count"]
    )
    sla, exc, gate = data["sla"], data["exceptions"], data["gate"]
    pct = sla["resolved_within_sla_pct"]
    lines.append(
        f"SLA: {sla['overdue']} overdue now; "
        + ("no SLA in the policy" if pct is None else f"{pct:g}% resolved within SLA")
    )
    lines.append(
        f"Exceptions: {exc['active']} active, {exc['expiring']} expiring within 14 days, "
        f"{exc['expired']} expired"
    )
    rate = gate["block_rate"]
    lines.append(
        f"Gate: {gate['pr_scans']} PR scan(s), {gate['blocked']} blocked"
        + ("" if rate is None else f" ({100 * rate:.1f}%)")
    )
    lines.extend(f"  {r['rule']}: {r['blocked']}" for r in gate["top_rules"])
    if data["by_repo"]:
        lines.append("By repository (open cases, open findings):")
        lines.extend(
            f"  {r['repo']}: {r['open_cases']}, {sum(r['open_findings'].values())}"
            for r in data["by_repo"]
        )
    if data["exposure"]:
        lines.append("Exposure (advisory, package: repositories, cases):")
        lines.extend(
            f"  {e['advisory']} {e['package']}: {e['repos']}, {e['cases']}"
            for e in data["exposure"][:20]
        )
    lines.append("Weekly (appeared / fixed):")
    lines.extend(f"  {w['week']}: {w['appeared']} / {w['fixed']}" for w in data["weekly"])
    return "\n".join(lines)


def _rows(data: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    yield "open_cases", "", data["open_cases"]
    for sev, n in data["open_findings"].items():
        yield "open_findings", f"severity={sev}", n
    for repo in data["by_repo"]:
        yield "repo_open_cases", f"repo={repo['repo']}", repo["open_cases"]
        for sev, n in repo["open_findings"].items():
            yield "repo_open_findings", f"repo={repo['repo']};severity={sev}", n
    for name in ("by_source", "by_kind"):
        label = name.removeprefix("by_")
        for value, n in data[name].items():
            yield f"open_findings_{label}", f"{label}={value}", n
    for week in data["weekly"]:
        yield "appeared", f"week={week['week']}", week["appeared"]
        yield "fixed", f"week={week['week']}", week["fixed"]
    for sev, spread in data["mttr_days"].items():
        for stat in ("mean", "median", "count"):
            yield f"mttr_days_{stat}", f"severity={sev}", spread[stat]
    for stat in ("mean", "median", "count"):
        yield f"mtta_hours_{stat}", "", data["mtta_hours"][stat]
    for name, value in data["sla"].items():
        yield f"sla_{name}", "", value
    for name, value in data["exceptions"].items():
        yield f"exceptions_{name}", "", value
    for name in ("pr_scans", "blocked", "block_rate"):
        yield f"gate_{name}", "", data["gate"][name]
    for rule in data["gate"]["top_rules"]:
        yield "gate_rule_blocked", f"rule={rule['rule']}", rule["blocked"]
    for line in data["exposure"]:
        labels = f"advisory={line['advisory']};package={line['package']}"
        yield "exposure_repos", labels, line["repos"]
        yield "exposure_cases", labels, line["cases"]


def report_csv(metrics: Metrics) -> str:
    """One row per value: ``metric,labels,value`` (labels ``name=value`` joined by ``;``;
    an empty value is a mean or share that has no data)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["metric", "labels", "value"])
    for metric, labels, value in _rows(report_data(metrics)):
        writer.writerow([metric, labels, "" if value is None else value])
    return buffer.getvalue()
