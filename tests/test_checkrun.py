"""Check-run content: GitHub's shape of the summary (conclusion, title, size limits), the one
Markdown summary it carries, annotations, and links to the case file."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from securecase.domain.findings import Finding, Kind, Location, Package, Severity
from securecase.domain.outcome import BlockingFinding
from securecase.github import checks as checkrun
from securecase.github.checks import Conclusion
from securecase.github.links import case_file_url, repo_web_base
from securecase.render.markdown import TRUNCATION_NOTE, Summary, summary_markdown

ZERO = {"critical": 0, "high": 0, "medium": 0, "low": 0, "info": 0, "unknown": 0}


def vuln(
    advisory: str, severity: Severity, name: str, fixed: str | None, title: str = "t"
) -> Finding:
    return Finding(
        f"id-{advisory}",
        "trivy-image",
        Kind.VULNERABILITY,
        advisory,
        severity,
        title,
        package=Package(name, "1.0", fixed),
    )


def blocking(finding: Finding, *, new: bool | None = True) -> BlockingFinding:
    return BlockingFinding(finding, ("no-high-into-main",), new)


def data(**changes: object) -> Summary:
    base = Summary(
        case_key="github::acme::shop::PR::42",
        verdict="BLOCK",
        status="NEW",
        mode="pr_gate",
        gate=True,
        fails=True,
        reasons=("no-high-into-main: 2 findings at HIGH or above (at most 0 allowed)",),
        appeared=2,
        fixed=1,
        counts={
            "new": {**ZERO, "critical": 1, "high": 1},
            "existing": {**ZERO, "medium": 4},
            "fixed": {**ZERO, "low": 2},
            "excepted": {**ZERO, "high": 3},
        },
        blocking=(
            blocking(vuln("CVE-2021-1", Severity.CRITICAL, "openssl", "1.1.1w")),
            blocking(vuln("GHSA-abcd-efgh-ijkl", Severity.HIGH, "zl|b", None, "a | pipe")),
            blocking(vuln("DSA-5", Severity.HIGH, "bash", None), new=False),
        ),
        target_branch="main",
        notes=("exception EXC-7 expired on 2026-11-01: 1 finding(s) no longer covered",),
        incomplete=(),
        policy_origin="policy.yaml",
        policy_blob="feedfacefeedfacefeedface",
        case_path="cases/github/acme/shop/pr-42/case.yaml",
        cases_commit="0123456789abcdef0123456789abcdef01234567",
        case_url="https://github.com/acme/security-cases/blob/0123/cases/x/case.yaml",
        run_url="https://github.com/acme/shop/actions/runs/9",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_conclusions() -> None:
    assert checkrun.conclusion(data()) is Conclusion.FAILURE
    assert checkrun.conclusion(data(fails=False, mode="ci")) is Conclusion.NEUTRAL
    assert checkrun.conclusion(data(gate=False, fails=False, reasons=())) is Conclusion.SUCCESS


def test_title_is_one_line_and_says_why() -> None:
    assert checkrun.title(data()) == (
        "Blocked: no-high-into-main: 2 findings at HIGH or above (at most 0 allowed)"
    )
    two = data(reasons=("a: x\ny", "b: z"))
    assert "\n" not in checkrun.title(two) and "(+1 more rule(s))" in checkrun.title(two)
    assert checkrun.title(data(gate=False, fails=False, reasons=())).startswith("Passed: 6 active")
    assert checkrun.title(data(fails=False)).startswith("Would block (ci mode")


def test_summary_leads_with_what_to_do_then_one_table_of_blocking_findings() -> None:
    text = checkrun.check_summary(data(headline="1 new CRITICAL, 1 new HIGH, 1 HIGH on main"))
    assert text.startswith("### securecase: BLOCK — 1 new CRITICAL, 1 new HIGH, 1 HIGH on main\n")
    todo = text.index("**To unblock**")
    table = text.index("| severity | advisory |")
    assert todo < table < text.index("Case file:") < text.index("<details>")
    assert "- Upgrade `openssl` to `1.1.1w` (CVE-2021-1)" in text
    assert "- Fix on the target branch `main`: 1 blocking finding(s)" in text
    assert "- Fix the code or request a policy exception: 1 blocking finding(s)" in text
    assert "- Or accept the risk for a while: request an exception in the policy" in text
    assert (
        "| CRITICAL | [`CVE-2021-1`](https://nvd.nist.gov/vuln/detail/CVE-2021-1) "
        "| `openssl 1.0` → `1.1.1w` | `no-high-into-main` | new in this PR |"
    ) in text
    assert "(https://github.com/advisories/GHSA-abcd-efgh-ijkl)" in text
    assert "`zl\\|b 1.0` → no fix yet" in text  # a pipe in a package name cannot break the table
    assert (
        "| HIGH | `DSA-5` | `bash 1.0` → no fix yet | `no-high-into-main` | on the target branch |"
        in text
    )


def test_the_policy_is_linked_and_time_rules_show_the_age() -> None:
    first = data().blocking[0]
    text = checkrun.check_summary(
        data(
            policy_url="https://github.com/acme/security-cases/blob/0123/policy.yaml",
            timed_rules={"no-high-into-main": "past SLA"},
            ages={first.finding.id: 45},
        )
    )
    assert (
        "request an exception in "
        "[`policy.yaml`](https://github.com/acme/security-cases/blob/0123/policy.yaml)"
    ) in text
    assert "| `no-high-into-main` (45 days old, past SLA) | new in this PR |" in text
    # Findings whose age is unknown show the rule alone.
    assert "| `no-high-into-main` | on the target branch |" in text


def test_summary_counts_are_folded_and_say_new_and_appeared_apart() -> None:
    text = checkrun.check_summary(data())
    details = text[text.index("<details>") :]
    assert "| new | 1 | 1 | 0 | 0 | 0 | 0 | 2 |" in details
    assert "| existing | 0 | 0 | 4 | 0 | 0 | 0 | 4 |" in details
    assert "| fixed | 0 | 0 | 0 | 2 | 0 | 0 | 2 |" in details
    assert "| excepted | 0 | 3 | 0 | 0 | 0 | 0 | 3 |" in details
    assert "2 appeared and 1 fixed since the last scan." in text
    assert "- Exception EXC-7 expired on 2026-11-01" in text
    assert "[cases/github/acme/shop/pr-42/case.yaml](https://github.com/acme/" in text
    assert "`0123456789ab`" in text


def test_summary_without_link_names_the_path() -> None:
    text = checkrun.check_summary(data(case_url=None, run_url=None))
    assert "Case file: `cases/github/acme/shop/pr-42/case.yaml`" in text


def test_passing_summary_has_nothing_to_do() -> None:
    text = checkrun.check_summary(
        data(verdict="PASS", gate=False, fails=False, reasons=(), blocking=())
    )
    assert "To unblock" not in text and "| severity |" not in text


def test_many_blocking_findings_are_capped_with_a_pointer() -> None:
    many = tuple(blocking(vuln(f"CVE-{i}", Severity.HIGH, "pkg", None)) for i in range(45))
    text = checkrun.check_summary(data(blocking=many))
    assert "`CVE-29`" in text and "`CVE-30`" not in text
    assert "…and 15 more blocking finding(s) in the case file." in text


@settings(max_examples=40, deadline=None)
@given(
    limit=st.integers(min_value=200, max_value=5000),
    rows=st.integers(min_value=0, max_value=60),
    note=st.text(min_size=0, max_size=400),
)
def test_summary_never_exceeds_the_limit(limit: int, rows: int, note: str) -> None:
    items = tuple(
        blocking(vuln(f"R{i}", Severity.HIGH, "ü" * 50, note or None)) for i in range(rows)
    )
    facts = data(blocking=items, notes=(note,))
    text = summary_markdown(facts, max_bytes=limit)
    assert len(text.encode("utf-8")) <= limit
    full = summary_markdown(facts)
    if len(full.encode("utf-8")) > limit:
        assert text.endswith(TRUNCATION_NOTE)
    else:
        assert text == full


def test_status_description_fits_140_characters() -> None:
    long_reason = "rule-" + "x" * 300 + ": many findings"
    description = checkrun.status_description(data(reasons=(long_reason,)))
    assert len(description) == 140 and description.endswith("…")
    assert checkrun.status_state(data()) == "failure"
    assert checkrun.status_state(data(fails=False)) == "success"


def test_annotations_only_for_findings_with_file_and_line() -> None:
    def finding(i: int, **kw: object) -> Finding:
        return Finding(
            f"id{i}",
            "trivy-config",
            Kind.MISCONFIGURATION,
            f"DS{i:03d}",
            Severity.HIGH,
            "title " * 100,
            **kw,  # type: ignore[arg-type]
        )

    findings = [
        finding(1, location=Location(path="Dockerfile", start_line=3, end_line=5)),
        finding(2, location=Location(path="Dockerfile")),  # no line
        finding(3, package=Package("openssl", "1.1")),  # no location
        finding(4, location=Location(url="https://x/y")),  # DAST URL
        finding(5, location=Location(path="/k8s/a.yaml", start_line=9, end_line=2)),
        finding(6, location=Location(path="../outside/a.tf", start_line=1)),  # not in the repo
        finding(7, location=Location(path="src\\..\\..\\b.tf", start_line=1)),
    ]
    annotations = checkrun.annotations_for(findings)
    assert [(a.path, a.start_line, a.end_line) for a in annotations] == [
        ("Dockerfile", 3, 5),
        ("k8s/a.yaml", 9, 9),
    ]
    assert annotations[0].level is checkrun.AnnotationLevel.FAILURE
    assert annotations[0].title == "DS001 (HIGH)"
    assert checkrun.annotation_level(Severity.MEDIUM) is checkrun.AnnotationLevel.WARNING
    assert checkrun.annotation_level(Severity.LOW) is checkrun.AnnotationLevel.NOTICE


def test_annotation_batches() -> None:
    items = checkrun.annotations_for(
        Finding(
            f"i{n}",
            "s",
            Kind.CODE,
            "r",
            Severity.LOW,
            "t",
            location=Location(path="a.py", start_line=n + 1),
        )
        for n in range(101)
    )
    assert [len(b) for b in checkrun.annotation_batches(items)] == [50, 50, 1]
    assert checkrun.annotation_batches(()) == [()]


def test_step_summary_is_capped_at_one_mebibyte() -> None:
    big = "x" * (checkrun.STEP_SUMMARY_LIMIT + 10)
    capped = checkrun.step_summary(big)
    assert len(capped.encode("utf-8")) <= checkrun.STEP_SUMMARY_LIMIT
    assert checkrun.step_summary("small") == "small"


def test_case_links_from_cases_repo_urls() -> None:
    expect = "https://github.com/acme/security-cases"
    for remote in (
        "https://github.com/acme/security-cases.git",
        "https://x-access-token:ghs_SECRET@github.com/acme/security-cases",
        "git@github.com:acme/security-cases.git",
        "ssh://git@github.com/acme/security-cases.git",
    ):
        assert repo_web_base(remote) == expect, remote
    assert repo_web_base("./security-cases") is None
    assert repo_web_base("/srv/git/security-cases.git") is None
    assert repo_web_base("https://gitlab.com/acme/security-cases.git") is None
    ghes = repo_web_base(
        "https://ghe.example.com/acme/cases.git", server_url="https://ghe.example.com"
    )
    assert ghes == "https://ghe.example.com/acme/cases"
    link = case_file_url(expect, "abc123", "cases/github/acme/shop/branch-feature%2Fx/case.yaml")
    assert link == (
        "https://github.com/acme/security-cases/blob/abc123/"
        "cases/github/acme/shop/branch-feature%252Fx/case.yaml"
    )
    assert case_file_url(None, "abc", "p") is None and case_file_url(expect, None, "p") is None
