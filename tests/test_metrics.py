"""domain/metrics.py: pure metric functions over in-code cases, events and a fixed now."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from conftest import vuln_finding
from securecase.domain.case import Case, GateRecord, Latest, Seen, Status, Tracked, Triage
from securecase.domain.findings import Severity
from securecase.domain.metrics import (
    AuthorKind,
    CommitEvent,
    Window,
    acknowledges,
    case_facts,
    compute,
    gate,
    iso_week,
)
from securecase.domain.subjects import make_subject

NOW = datetime(2026, 12, 1, tzinfo=UTC)
WINDOW = Window(date(2026, 11, 1), date(2026, 11, 30))


def case(repo: str, pr: int, tracked: list[Tracked], resolved: list[Tracked]) -> Case:
    subject = make_subject(provider="github", repo=repo, pr=pr, branch=None, target_branch="main")
    return Case(
        subject=subject,
        status=Status.NEW,
        triage=Triage(),
        latest=Latest(),
        gate=GateRecord(mode="pr_gate", decision="pass", gate=False),
        sources={},
        findings=tuple(tracked),
        resolved=tuple(resolved),
        created_at="2026-11-02T00:00:00Z",
        updated_at="2026-11-02T00:00:00Z",
    )


def seen(day: int, hour: int = 0) -> Seen:
    return Seen(None, f"2026-11-{day:02d}T{hour:02d}:00:00Z")


def test_mttr_mean_median_and_window() -> None:
    resolved = [
        Tracked(vuln_finding(1, "HIGH"), seen(2), resolved=seen(4)),
        Tracked(vuln_finding(2, "HIGH"), seen(2), resolved=seen(12)),
        Tracked(vuln_finding(3, "HIGH"), seen(2), resolved=seen(30)),
        Tracked(
            vuln_finding(4, "LOW"),
            Seen(None, "2026-10-01T00:00:00Z"),
            Seen(None, "2026-10-05T00:00:00Z"),
        ),
    ]
    m = compute([case_facts(case("acme/a", 1, [], resolved))], [], window=WINDOW, now=NOW)
    assert m.mttr_days["high"].count == 3
    assert (
        m.mttr_days["high"].mean == 13.33
    )  # (2 + 10 + 28) / 3 and m.mttr_days["high"].median == 10.0
    assert m.mttr_days["low"].count == 0  # resolved before the window


def test_mtta_first_human_acknowledgement_only() -> None:
    c = case("acme/a", 1, [Tracked(vuln_finding(1), seen(2))], [])
    at = datetime(2026, 11, 2, tzinfo=UTC)
    events = [
        CommitEvent("b1", AuthorKind.BOT, at + timedelta(hours=1), c.key, {"decision": "pass"}),
        CommitEvent("h0", AuthorKind.HUMAN, at + timedelta(hours=2), c.key, acknowledges=False),
        CommitEvent("h2", AuthorKind.HUMAN, at + timedelta(hours=9), c.key, acknowledges=True),
        CommitEvent("h1", AuthorKind.HUMAN, at + timedelta(hours=3), c.key, acknowledges=True),
    ]
    m = compute([case_facts(c)], events, window=WINDOW, now=NOW)
    assert (m.mtta_hours.mean, m.mtta_hours.count) == (3.0, 1)


def test_acknowledges_status_or_triage() -> None:
    c = case("acme/a", 1, [], [])
    assert not acknowledges(c, c) and not acknowledges(None, c)
    assert acknowledges(c, replace(c, status=Status.TRIAGED))
    assert acknowledges(c, replace(c, triage=Triage(assignee="@a")))


def test_sla_overdue_and_resolved_within() -> None:
    sla = {Severity.HIGH: 10}
    c = case(
        "acme/a",
        1,
        [Tracked(vuln_finding(1), seen(2)), Tracked(vuln_finding(2), seen(25))],
        [
            Tracked(vuln_finding(3), seen(2), resolved=seen(12)),  # exactly on time
            Tracked(vuln_finding(4), seen(2), resolved=seen(12, 1)),  # an hour late
            Tracked(vuln_finding(5, "LOW"), seen(2), resolved=seen(28)),  # no SLA for LOW
        ],
    )
    m = compute([case_facts(c)], [], window=WINDOW, now=NOW, sla_days=sla)
    assert m.sla.overdue == 1  # first seen Nov 2, due Nov 12; Nov 25's is due Dec 5
    assert (m.sla.resolved_within_sla_pct, m.sla.resolved_with_sla) == (50.0, 2)
    assert compute([case_facts(c)], [], window=WINDOW, now=NOW).sla.resolved_within_sla_pct is None


def test_gate_counts_pr_scans_only() -> None:
    at = datetime(2026, 11, 3, tzinfo=UTC)
    pr, branch = "github::acme::a::PR::1", "github::acme::a::BR::main"
    events = [
        CommitEvent("1", AuthorKind.BOT, at, pr, {"decision": "block", "rules": "r1 r2"}),
        CommitEvent("2", AuthorKind.BOT, at, pr, {"decision": "block", "rules": "r2"}),
        CommitEvent("3", AuthorKind.BOT, at, pr, {"decision": "pass"}),
        CommitEvent("4", AuthorKind.BOT, at, pr, {"decision": "block", "stale": "true"}),
        CommitEvent("5", AuthorKind.BOT, at, branch, {"decision": "block"}),
        CommitEvent("6", AuthorKind.BOT, at - timedelta(days=30), pr, {"decision": "block"}),
        CommitEvent("7", AuthorKind.HUMAN, at, pr, {"decision": "block"}),
    ]
    line = gate(events, WINDOW)
    assert (line.pr_scans, line.blocked, line.block_rate) == (3, 2, 0.6667)
    assert line.top_rules == (("r2", 2), ("r1", 1))


def test_weeks_cover_the_window() -> None:
    assert iso_week(datetime(2026, 12, 31, tzinfo=UTC)) == "2026-W53"
    assert iso_week(datetime(2027, 1, 4, tzinfo=UTC)) == "2027-W01"
    m = compute([], [], window=Window(date(2026, 12, 28), date(2027, 1, 4)), now=NOW)
    assert [w.week for w in m.weekly] == ["2026-W53", "2027-W01"]
    assert m.open_cases == 0 and m.mtta_hours.mean is None and m.gate.block_rate is None


def test_report_json_is_the_text_of_the_standard_library_encoder() -> None:
    from securecase.domain.findings import Package
    from securecase.render.report import report_data, report_json

    accented = replace(vuln_finding(7, "LOW"), package=Package("paquete-ñ", "1", None))
    c = case(
        "acme/nandu",
        3,
        [Tracked(vuln_finding(1), seen(2)), Tracked(accented, seen(3))],
        [Tracked(vuln_finding(2, "CRITICAL"), seen(2), resolved=seen(9, 7))],
    )
    m = compute([case_facts(c)], [], window=WINDOW, now=NOW, sla_days={Severity.HIGH: 10})
    assert m.mttr_days["critical"].mean == 7.29 and m.sla.resolved_within_sla_pct is None
    expected = json.dumps(report_data(m), indent=2, ensure_ascii=False)
    assert report_json(report_data(m)) == expected
    assert '"paquete-ñ"' in expected and '"mean": 7.29' in expected
