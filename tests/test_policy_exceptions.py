"""Baselines, the new conditions, expiring exceptions and stale detection: pure, in-code cases.

Everything here calls :func:`evaluate_case` (or the loader) directly with the day passed in;
the end-to-end counterparts are in test_cli_policy.py.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import vuln_finding
from securecase.domain.case import (
    Case,
    ExceptionRef,
    GateRecord,
    Latest,
    Seen,
    Status,
    Tracked,
    Triage,
    mark_findings,
)
from securecase.domain.findings import Finding, Kind, Location, Severity, fingerprint
from securecase.domain.policy import (
    evaluate_case,
    expired_exceptions,
    load_policy,
    stale_exceptions,
    validate_policy,
)
from securecase.domain.subjects import Provider, Subject
from securecase.errors import PolicyError
from securecase.storage.casefile import dump_case, load_case

PR = Subject(Provider.GITHUB, "acme", "shop", pr=7, branch="feat", target_branch="main")
MAIN = Subject(Provider.GITHUB, "acme", "shop", branch="main")
OTHER_REPO_PR = Subject(Provider.GITHUB, "other", "site", pr=1, target_branch="main")
TODAY = date(2027, 1, 20)


def vuln(n: int, severity: str = "HIGH", *, cvss: float | None = None, source: str = "img"):
    return vuln_finding(n, severity, source=source, cvss=cvss)


def code(n: int, path: str, severity: str = "HIGH", source: str = "semgrep"):
    return Finding(
        id=fingerprint(source, "c", str(n)),
        source=source,
        kind=Kind.CODE,
        advisory=f"rule-{n}",
        severity=Severity(severity),
        title=f"code {n}",
        location=Location(path=path, start_line=3),
    )


def case(
    subject: Subject,
    *findings: Finding,
    first_seen: date = TODAY,
    ages: dict[str, int] | None = None,
    status: Status = Status.NEW,
) -> Case:
    """A case whose findings were first seen on ``first_seen`` (or ``ages[id]`` days ago)."""
    ages = ages or {}
    tracked = []
    for f in findings:
        seen = TODAY - timedelta(days=ages[f.id]) if f.id in ages else first_seen
        tracked.append(Tracked(f, Seen("c1", f"{seen.isoformat()}T10:00:00Z")))
    return Case(
        subject=subject,
        status=status,
        triage=Triage(),
        latest=Latest(commit="c1"),
        gate=GateRecord(mode="pr_gate", decision="pass", gate=False),
        sources={},
        findings=tuple(tracked),
        resolved=(),
        created_at="2027-01-01T00:00:00Z",
        updated_at="2027-01-01T00:00:00Z",
    )


def policy(text: str):
    return load_policy(text.encode(), origin="policy.yaml")


NEW_HIGH = """
version: 1
rules:
  - id: new-high
    when: {event: pull_request, target_branches: [main]}
    block: {severity_at_least: HIGH, new_only: true}
"""


def with_exceptions(rules: str, *entries: str) -> str:
    return rules + "exceptions:\n" + "".join(entries)


def exception(eid: str, match: str, expires: str = "2027-01-31") -> str:
    return (
        f"  - id: {eid}\n    match: {match}\n    reason: not reachable\n"
        f'    approved_by: "@acme/security"\n    expires: {expires}\n'
    )


# --- baseline -----------------------------------------------------------------------------


def test_new_only_blocks_on_exactly_the_findings_absent_from_the_baseline():
    old, extra = vuln(1), vuln(2)
    decision = evaluate_case(
        policy(NEW_HIGH), case(PR, old, extra), baseline=case(MAIN, old), today=TODAY
    )
    assert decision.gate and decision.baseline_found
    assert decision.outcomes[0].matched == (extra.id,)
    assert decision.new == (extra.id,)
    assert decision.reasons == ("new-high: 1 new finding at HIGH or above (at most 0 allowed)",)


def test_without_a_baseline_every_finding_is_new_and_the_decision_says_so():
    old, extra = vuln(1), vuln(2)
    decision = evaluate_case(policy(NEW_HIGH), case(PR, old, extra), baseline=None, today=TODAY)
    assert not decision.baseline_found
    assert set(decision.new) == {old.id, extra.id}
    assert set(decision.outcomes[0].matched) == {old.id, extra.id}


def test_a_finding_resolved_on_the_target_branch_counts_as_new():
    fixed_on_main = replace_resolved(case(MAIN, vuln(1)))
    decision = evaluate_case(
        policy(NEW_HIGH), case(PR, vuln(1)), baseline=fixed_on_main, today=TODAY
    )
    assert decision.baseline_found and decision.new == (vuln(1).id,) and decision.gate


def replace_resolved(c: Case) -> Case:
    from dataclasses import replace

    return replace(c, findings=(), resolved=c.findings, status=Status.RESOLVED)


@given(
    st.sets(st.integers(0, 40), max_size=12),
    st.sets(st.integers(0, 40), max_size=12),
)
def test_new_is_exactly_the_set_difference(pr_ids, main_ids):
    pr_case = case(PR, *(vuln(n) for n in sorted(pr_ids)))
    main_case = case(MAIN, *(vuln(n) for n in sorted(main_ids)))
    decision = evaluate_case(policy(NEW_HIGH), pr_case, baseline=main_case, today=TODAY)
    expected = {vuln(n).id for n in pr_ids - main_ids}
    assert set(decision.new) == expected
    assert set(decision.outcomes[0].matched) == expected
    assert decision.gate == bool(expected)


# --- conditions -----------------------------------------------------------------------------


def test_cvss_at_least_boundary_and_missing_data():
    p = policy("version: 1\nrules:\n  - id: cvss\n    block: {cvss_at_least: 7.5}\n")
    at, below, unknown = vuln(1, cvss=7.5), vuln(2, cvss=7.4), vuln(3, cvss=None)
    decision = evaluate_case(p, case(MAIN, at, below, unknown), baseline=None, today=TODAY)
    assert decision.outcomes[0].matched == (at.id,)
    assert "with CVSS 7.5 or above" in decision.reasons[0]


def test_age_days_over_counts_days_since_first_seen():
    p = policy("version: 1\nrules:\n  - id: old\n    block: {age_days_over: 30}\n")
    thirty, thirty_one = vuln(1), vuln(2)
    c = case(MAIN, thirty, thirty_one, ages={thirty.id: 30, thirty_one.id: 31})
    decision = evaluate_case(p, c, baseline=None, today=TODAY)
    assert decision.outcomes[0].matched == (thirty_one.id,)
    assert decision.reasons[0].startswith("old: 1 finding first seen over 30 days ago")


def test_sla_breached_uses_the_days_of_each_severity():
    p = policy(
        "version: 1\nrules:\n  - id: sla\n    block: {sla_breached: true}\n"
        "sla_days: {CRITICAL: 7, HIGH: 30}\n"
    )
    crit_8, crit_7, high_31, high_30, medium_400 = (
        vuln(1, "CRITICAL"),
        vuln(2, "CRITICAL"),
        vuln(3, "HIGH"),
        vuln(4, "HIGH"),
        vuln(5, "MEDIUM"),
    )
    ages = {crit_8.id: 8, crit_7.id: 7, high_31.id: 31, high_30.id: 30, medium_400.id: 400}
    c = case(MAIN, crit_8, crit_7, high_31, high_30, medium_400, ages=ages)
    decision = evaluate_case(p, c, baseline=None, today=TODAY)
    # MEDIUM has no SLA in this policy, so it never breaches one.
    assert set(decision.outcomes[0].matched) == {crit_8.id, high_31.id}
    assert "past their SLA" in decision.reasons[0]


def test_a_finding_on_the_target_branch_is_as_old_as_it_is_there():
    p = policy(
        "version: 1\nrules:\n  - id: sla\n    block: {sla_breached: true}\nsla_days: {HIGH: 30}\n"
    )
    inherited, fresh = vuln(1), vuln(2)
    pr_case = case(PR, inherited, fresh)  # both first seen today in the PR's own case
    main_case = case(MAIN, inherited, ages={inherited.id: 45})
    decision = evaluate_case(p, pr_case, baseline=main_case, today=TODAY)
    assert decision.outcomes[0].matched == (inherited.id,)
    assert not evaluate_case(p, pr_case, baseline=None, today=TODAY).gate


def test_conditions_combine_with_max_allowed():
    p = policy(
        "version: 1\nrules:\n  - id: combo\n"
        "    block: {severity_at_least: HIGH, fixable_only: true, new_only: true,"
        " cvss_at_least: 9}\n    max_allowed: 1\n"
    )
    a, b, low_cvss = vuln(1, cvss=9.8), vuln(2, cvss=9.1), vuln(3, cvss=5.0)
    one = evaluate_case(p, case(PR, a, low_cvss), baseline=case(MAIN), today=TODAY)
    assert not one.gate and one.outcomes[0].matched == (a.id,)
    two = evaluate_case(p, case(PR, a, b, low_cvss), baseline=case(MAIN), today=TODAY)
    assert two.gate and two.blocking_rules == ("combo",)
    assert two.reasons[0].startswith("combo: 2 new fixable findings at HIGH or above")


# --- exceptions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "covered"),
    [
        ("{rule: CVE-2024-0001}", {1}),
        ("{package: pkg2}", {2}),
        ("{fingerprint: " + vuln(3).id + "}", {3}),
        ("{source: 'im*'}", {1, 2, 3}),
        ("{source: semgrep}", {10, 11}),
        ("{path: 'src/**'}", {10}),
        ("{path: 'src/*.py'}", set()),
        ("{path: 'src/**', source: semgrep}", {10}),
        ("{rule: CVE-2024-0001, package: pkg2}", set()),
        ("{rule: CVE-2024-0001, repos: ['acme/*']}", {1}),
        ("{rule: CVE-2024-0001, repos: ['other/*']}", set()),
    ],
)
def test_exception_match_fields_must_all_match(match, covered):
    findings = {
        1: vuln(1),
        2: vuln(2),
        3: vuln(3),
        10: code(10, "src/app/main.py"),
        11: code(11, "lib/util.py"),
    }
    p = policy(with_exceptions(NEW_HIGH, exception("EXC-1", match)))
    decision = evaluate_case(p, case(PR, *findings.values()), baseline=None, today=TODAY)
    expected = {findings[n].id for n in covered}
    assert set(decision.excepted) == expected
    # Excepted findings are not counted by rules, and every other finding is.
    assert set(decision.outcomes[0].matched) == {f.id for f in findings.values()} - expected
    if covered:
        (use,) = decision.exceptions_applied
        assert use.id == "EXC-1" and set(use.findings) == expected
    else:
        assert decision.exceptions_applied == ()


def test_exception_turns_block_into_pass_and_names_itself():
    target = vuln(2)
    p = policy(with_exceptions(NEW_HIGH, exception("EXC-7", "{rule: CVE-2024-0002}")))
    decision = evaluate_case(
        p, case(PR, vuln(1), target), baseline=case(MAIN, vuln(1)), today=TODAY
    )
    assert not decision.gate
    assert decision.excepted[target.id].id == "EXC-7"
    assert decision.exceptions_applied[0].findings == (target.id,)


@pytest.mark.parametrize(
    ("today", "applies"),
    [(date(2027, 1, 30), True), (date(2027, 1, 31), True), (date(2027, 2, 1), False)],
)
def test_expiry_boundary_day(today, applies):
    target = vuln(2)
    p = policy(with_exceptions(NEW_HIGH, exception("EXC-7", "{rule: CVE-2024-0002}")))
    decision = evaluate_case(p, case(PR, target), baseline=case(MAIN), today=today)
    assert decision.gate is not applies
    if applies:
        assert decision.exceptions_expired == ()
    else:
        assert decision.excepted == {}
        assert [u.id for u in decision.exceptions_expired] == ["EXC-7"]
        assert decision.reasons == (
            "new-high: 1 new finding at HIGH or above (at most 0 allowed); "
            "exception EXC-7 expired on 2027-01-31",
        )


@pytest.mark.parametrize(("days_left", "warned"), [(0, True), (14, True), (15, False)])
def test_exceptions_expiring_within_14_days_are_warned(days_left, warned):
    expires = (TODAY + timedelta(days=days_left)).isoformat()
    p = policy(with_exceptions(NEW_HIGH, exception("EXC-1", "{package: pkg1}", expires)))
    decision = evaluate_case(p, case(PR, vuln(1)), baseline=None, today=TODAY)
    assert [u.id for u in decision.exceptions_applied] == ["EXC-1"]
    assert bool(decision.exceptions_expiring) is warned


def test_the_longest_lived_matching_exception_wins():
    p = policy(
        with_exceptions(
            NEW_HIGH,
            exception("EXC-old", "{package: pkg1}", "2027-01-01"),
            exception("EXC-short", "{package: pkg1}", "2027-01-25"),
            exception("EXC-long", "{rule: CVE-2024-0001}", "2027-06-30"),
        )
    )
    decision = evaluate_case(p, case(PR, vuln(1)), baseline=None, today=TODAY)
    assert decision.excepted[vuln(1).id].id == "EXC-long"
    assert decision.exceptions_expired == ()


def test_an_expired_exception_on_a_non_blocking_finding_is_reported_but_not_a_reason():
    p = policy(with_exceptions(NEW_HIGH, exception("EXC-1", "{package: pkg1}", "2027-01-01")))
    decision = evaluate_case(p, case(PR, vuln(1, "LOW")), baseline=None, today=TODAY)
    assert not decision.gate and decision.reasons == ()
    assert [u.id for u in decision.exceptions_expired] == ["EXC-1"]


excepted_policy = policy(
    with_exceptions(
        "version: 1\nrules:\n  - id: any-high\n    block: {severity_at_least: HIGH}\n",
        exception("EXC-A", "{source: 'img'}", "2027-01-20"),
        exception("EXC-B", "{package: pkg3}", "2027-01-19"),
        exception("EXC-C", "{rule: CVE-2024-0004}", "2027-03-01"),
    )
)
small_findings = st.lists(
    st.builds(
        lambda n, s, src: vuln(n, s.value, source=src),
        st.integers(0, 6),
        st.sampled_from(list(Severity)),
        st.sampled_from(["img", "fs"]),
    ),
    max_size=10,
    unique_by=lambda f: f.id,
)


BARE_POLICY = policy("version: 1\nrules:\n  - id: any-high\n    block: {severity_at_least: HIGH}\n")


@given(small_findings, st.integers(-3, 60))
def test_exceptions_never_hide_and_never_add_blocks(findings, offset):
    today = TODAY + timedelta(days=offset)
    c = case(PR, *findings)
    with_exc = evaluate_case(excepted_policy, c, baseline=None, today=today)
    bare = evaluate_case(BARE_POLICY, c, baseline=None, today=today)
    # Exceptions only remove findings from the count: exactly the excepted ones.
    assert set(with_exc.outcomes[0].matched) == set(bare.outcomes[0].matched) - set(
        with_exc.excepted
    )
    assert set(with_exc.excepted) <= {f.id for f in findings}
    assert not with_exc.gate or bare.gate
    # Nothing expired ever covers a finding, and every applied exception is listed.
    assert all(not exc.expired(today) for exc in with_exc.excepted.values())
    listed = {fid for use in with_exc.exceptions_applied for fid in use.findings}
    assert listed == set(with_exc.excepted)


# --- stale / expired -------------------------------------------------------------------------


def test_stale_exceptions_match_no_active_finding_of_any_open_case():
    p = policy(
        with_exceptions(
            NEW_HIGH,
            exception("EXC-used", "{package: pkg1}"),
            exception("EXC-unused", "{package: nothing-uses-this}"),
            exception("EXC-other-repo", "{package: pkg2, repos: ['other/*']}"),
            exception("EXC-closed-only", "{package: pkg3}"),
            exception("EXC-expired", "{package: nothing}", "2027-01-19"),
            exception("EXC-fixed", "{package: pkg4}"),
        )
    )
    cases = [
        case(PR, vuln(1), vuln(2)),
        case(MAIN, vuln(2)),
        case(OTHER_REPO_PR, vuln(5)),
        case(PR, vuln(3), status=Status.CLOSED),
        replace_resolved(case(MAIN, vuln(4))),
    ]
    assert stale_exceptions(p, cases, TODAY) == (
        "EXC-unused",
        "EXC-other-repo",
        "EXC-closed-only",
        "EXC-fixed",
    )
    assert expired_exceptions(p, TODAY) == ("EXC-expired",)
    assert stale_exceptions(p, [], TODAY) == (
        "EXC-used",
        "EXC-unused",
        "EXC-other-repo",
        "EXC-closed-only",
        "EXC-fixed",
    )
    # Once it expires an exception is reported as expired, no longer as stale.
    later = date(2027, 2, 1)
    assert stale_exceptions(p, cases, later) == ()
    assert len(expired_exceptions(p, later)) == 6


def test_stale_detection_is_independent_of_case_order():
    p = policy(
        with_exceptions(
            NEW_HIGH, exception("E1", "{package: pkg1}"), exception("E2", "{package: pkg2}")
        )
    )
    cases = [case(PR, vuln(1)), case(MAIN, vuln(9))]
    assert stale_exceptions(p, cases, TODAY) == stale_exceptions(p, cases[::-1], TODAY) == ("E2",)


# --- loading --------------------------------------------------------------------------------


FULL = """version: 1
rules:
  - id: r
    block: {severity_at_least: HIGH, sla_breached: true, age_days_over: 3, cvss_at_least: 7}
exceptions:
  - id: EXC-1
    match:
      rule: CVE-1
      package: p
      path: "src/**"
      source: trivy-*
      repos: [acme/*]
      fingerprint: 0123456789abcdef
    reason: r
    approved_by: "@a"
    expires: 2027-01-31
sla_days: {CRITICAL: 7, HIGH: 30}
"""


def test_full_policy_loads_into_typed_data():
    p = policy(FULL)
    (rule,) = p.rules
    assert rule.block.sla_breached and rule.block.age_days_over == 3
    assert rule.block.cvss_at_least == 7.0
    (exc,) = p.exceptions
    assert exc.expires == date(2027, 1, 31) and exc.match.repos == ("acme/*",)
    assert exc.match.fingerprint == "0123456789abcdef" and exc.match.path == "src/**"
    assert p.sla_days == {Severity.CRITICAL: 7, Severity.HIGH: 30}


EXC = (
    "version: 1\nrules: []\nexceptions:\n  - id: E1\n    match: {rule: CVE-1}\n"
    "    reason: r\n    approved_by: a\n    expires: 2027-01-31\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            EXC.replace("    reason: r\n", ""),
            'policy.yaml:4: $.exceptions[0]: "reason" is a required',
        ),
        (EXC.replace("    expires: 2027-01-31\n", ""), '$.exceptions[0]: "expires" is a required'),
        (EXC + "    owner: me\n", "policy.yaml:4: $.exceptions[0]: Additional properties"),
        (EXC.replace("{rule: CVE-1}", "{cve: CVE-1}"), "policy.yaml:5: $.exceptions[0].match"),
        (EXC.replace("{rule: CVE-1}", "{}"), "policy.yaml:5: $.exceptions[0].match"),
        (
            EXC + EXC.split("exceptions:\n")[1],
            "policy.yaml:9: $.exceptions[1].id: duplicate exception id 'E1' "
            "(first defined at line 4)",
        ),
        (
            EXC.replace("{rule: CVE-1}", "{repos: ['acme/*']}"),
            "policy.yaml:5: $.exceptions[0].match: names only repos",
        ),
        (
            EXC.replace("2027-01-31", "2027-02-30"),
            "policy.yaml:8: $.exceptions[0].expires: '2027-02-30' is not a calendar date",
        ),
        (EXC.replace("2027-01-31", "next week"), "policy.yaml:8: $.exceptions[0].expires"),
        (
            "version: 1\nrules:\n  - id: s\n    block: {sla_breached: true}\n",
            "policy.yaml:3: $.rules[0].block.sla_breached: needs sla_days",
        ),
        ("version: 1\nrules: []\nsla_days: {HIGH: -1}\n", "policy.yaml:3: $.sla_days.HIGH"),
        ("version: 1\nrules: []\nsla_days: {SEVERE: 3}\n", "policy.yaml:3: $.sla_days"),
        (
            "version: 1\nrules:\n  - id: c\n    block: {cvss_at_least: 11}\n",
            "policy.yaml:4: $.rules[0].block.cvss_at_least",
        ),
        (
            "version: 1\nrules:\n  - id: c\n    block: {new_only: yes please}\n",
            "policy.yaml:4: $.rules[0].block.new_only",
        ),
    ],
)
def test_invalid_exceptions_and_conditions_name_file_line(text, expected):
    with pytest.raises(PolicyError) as info:
        policy(text)
    assert any(expected in problem for problem in info.value.problems), info.value.problems


def test_validate_flags_expired_exceptions_with_file_line_but_loading_does_not():
    data = EXC.encode()
    assert validate_policy(data, origin="policy.yaml", today=date(2027, 1, 31)).exceptions
    with pytest.raises(PolicyError) as info:
        validate_policy(data, origin="policy.yaml", today=date(2027, 2, 1))
    assert info.value.problems == (
        "policy.yaml:8: $.exceptions[0].expires: exception E1 expired on 2027-01-31 "
        "(today is 2027-02-01); renew or remove it",
    )
    assert load_policy(data, origin="policy.yaml").exceptions[0].id == "E1"


# --- case file marks -------------------------------------------------------------------------


def test_marks_round_trip_through_the_case_file_deterministically():
    a, b, c = vuln(1), vuln(2), vuln(3, "LOW")
    marked = mark_findings(
        case(PR, a, b, c),
        new={b.id},
        excepted={c.id: ExceptionRef("EXC-1", "2027-01-31")},
    )
    files = dump_case(marked)
    loaded = load_case(files["case.yaml"], files["findings.json"], folder="cases/x")
    assert dump_case(loaded) == files
    by_id = {t.finding.id: t for t in loaded.findings}
    assert by_id[a.id].new is False and by_id[b.id].new is True
    assert by_id[c.id].exception == ExceptionRef("EXC-1", "2027-01-31")
    # Excepted findings are shown in the file but not counted.
    assert loaded.counts["low"] == 0 and loaded.counts["high"] == 2
    assert loaded.excepted == (c,)
    text = files["findings.json"].decode()
    assert '      "new": true\n' in text
    assert '      "exception": {\n        "id": "EXC-1",\n' in text


def test_branch_cases_carry_no_new_flag():
    marked = mark_findings(case(MAIN, vuln(1)), new=None, excepted={})
    assert '"new"' not in dump_case(marked)["findings.json"].decode()


def test_validate_reports_expired_exceptions_with_the_other_problems_at_once():
    data = (EXC + EXC.split("exceptions:\n")[1].replace("E1", "E2")).replace(
        "rules: []", "rules: []\nmode: gate"
    )
    with pytest.raises(PolicyError) as info:
        validate_policy(data.encode(), origin="policy.yaml", today=date(2027, 2, 1))
    problems = info.value.problems
    assert any(p.startswith("policy.yaml:3: $.mode") for p in problems), problems
    assert [p.split(": ", 2)[1] for p in problems if "expired on" in p] == [
        "$.exceptions[0].expires",
        "$.exceptions[1].expires",
    ]
    assert "(3 problem(s))" in info.value.message
    # Without expired exceptions the loader's own error stands unchanged.
    with pytest.raises(PolicyError) as info:
        validate_policy(data.encode(), origin="policy.yaml", today=date(2027, 1, 1))
    assert len(info.value.problems) == 1
