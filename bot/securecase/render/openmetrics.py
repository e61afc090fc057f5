"""``securecase report --output openmetrics``: the report's data as OpenMetrics text.

A module of its own because prometheus_client takes a noticeable part of a report's start-up
time: only this output imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest

from securecase.domain.metrics import Metrics
from securecase.render.report import report_data


class _Collector:
    """Hands the report to prometheus_client's exposition writer as gauge families."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def collect(self) -> Iterator[Metric]:
        data = self.data
        yield _gauge(
            "open_cases", "Cases in NEW, TRIAGED or IN_PROGRESS.", [], [([], data["open_cases"])]
        )
        yield _gauge(
            "open_findings",
            "Active findings in open cases.",
            ["severity"],
            [([sev], n) for sev, n in data["open_findings"].items()],
        )
        yield _gauge(
            "repo_open_findings",
            "Active findings in open cases per repository.",
            ["repo", "severity"],
            [
                ([r["repo"], sev], n)
                for r in data["by_repo"]
                for sev, n in r["open_findings"].items()
            ],
        )
        yield _gauge(
            "repo_open_cases",
            "Open cases per repository.",
            ["repo"],
            [([r["repo"]], r["open_cases"]) for r in data["by_repo"]],
        )
        for name, what in (("appeared", "first seen"), ("fixed", "resolved")):
            yield _gauge(
                f"findings_{name}",
                f"Findings {what} per ISO week of the window.",
                ["week"],
                [([w["week"]], w[name]) for w in data["weekly"]],
            )
        for stat in ("mean", "median"):
            yield _gauge(
                f"mttr_days_{stat}",
                f"Days from first seen to resolved ({stat}), findings resolved in the window.",
                ["severity"],
                [([s], v[stat]) for s, v in data["mttr_days"].items() if v[stat] is not None],
            )
        yield _gauge(
            "mttr_resolved",
            "Findings resolved in the window.",
            ["severity"],
            [([s], v["count"]) for s, v in data["mttr_days"].items()],
        )
        mtta = data["mtta_hours"]
        for stat in ("mean", "median"):
            if mtta[stat] is not None:
                yield _gauge(
                    f"mtta_hours_{stat}",
                    f"Hours from case creation to the first human triage ({stat}).",
                    [],
                    [([], mtta[stat])],
                )
        yield _gauge("mtta_cases", "Cases first triaged in the window.", [], [([], mtta["count"])])
        yield _gauge(
            "sla_overdue", "Open findings past their SLA now.", [], [([], data["sla"]["overdue"])]
        )
        pct = data["sla"]["resolved_within_sla_pct"]
        if pct is not None:
            yield _gauge(
                "sla_resolved_within_ratio",
                "Share of findings resolved in the window within their SLA.",
                [],
                [([], pct / 100)],
            )
        yield _gauge(
            "exceptions",
            "Policy exceptions by state.",
            ["state"],
            [([state], n) for state, n in data["exceptions"].items()],
        )
        gate = data["gate"]
        yield _gauge(
            "gate_pr_scans", "Pull request scans in the window.", [], [([], gate["pr_scans"])]
        )
        yield _gauge(
            "gate_blocked", "Pull request scans the gate blocked.", [], [([], gate["blocked"])]
        )
        yield _gauge(
            "gate_rule_blocked",
            "Blocked pull request scans per policy rule.",
            ["rule"],
            [([r["rule"]], r["blocked"]) for r in gate["top_rules"]],
        )
        yield _gauge(
            "exposure_repos",
            "Repositories with an open finding of this advisory in this package.",
            ["advisory", "package"],
            [([e["advisory"], e["package"]], e["repos"]) for e in data["exposure"]],
        )


def _gauge(
    name: str, documentation: str, labels: list[str], samples: list[tuple[list[str], Any]]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(f"securecase_{name}", documentation, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


def report_openmetrics(metrics: Metrics) -> str:
    """OpenMetrics text exposition (``securecase_*`` gauges, ending with ``# EOF``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(report_data(metrics)))
    return generate_latest(registry).decode("utf-8")
