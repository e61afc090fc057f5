"""Policy loading (file:line errors) and pure evaluation."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securecase.domain.findings import Finding, Kind, Package, Severity, fingerprint
from securecase.domain.policy import BUILTIN_ORIGIN, Mode, builtin_policy, evaluate, load_policy
from securecase.domain.policy.evaluate import glob_match
from securecase.domain.policy.load import builtin_policy_bytes
from securecase.domain.subjects import Provider, Subject
from securecase.errors import PolicyError

ROOT = Path(__file__).resolve().parents[1]
PR_MAIN = Subject(Provider.GITHUB, "acme", "shop", pr=42, branch="feat", target_branch="main")
PR_DEV = Subject(Provider.GITHUB, "acme", "shop", pr=43, branch="feat", target_branch="develop")
PUSH_MAIN = Subject(Provider.GITHUB, "acme", "shop", branch="main")


def finding(severity="HIGH", kind="vulnerability", source="trivy-image", fixed="1.2", n=0):
    return Finding(
        id=fingerprint(source, str(n), severity, kind),
        source=source,
        kind=Kind(kind),
        advisory=f"CVE-2024-{n:04d}",
        severity=Severity(severity),
        title="t",
        package=Package("pkg", "1.0", fixed),
    )


def policy(text: str):
    return load_policy(text.encode(), origin="policy.yaml")


def test_builtin_policy_is_the_shipped_default_file():
    shipped = (ROOT / "policies" / "default.yaml").read_bytes()
    packaged = (ROOT / "bot" / "securecase" / "data" / "default-policy.yaml").read_bytes()
    assert shipped == packaged == builtin_policy_bytes()
    p = builtin_policy()
    assert p.mode is Mode.PR_GATE and [r.id for r in p.rules] == ["no-high-into-main"]
    assert p == load_policy(shipped, origin=BUILTIN_ORIGIN)


def test_the_builtin_policy_is_read_from_the_packaged_yaml(tmp_path):
    edited = builtin_policy_bytes().replace(
        b"{severity_at_least: HIGH}", b"{severity_at_least: LOW}"
    )
    assert edited != builtin_policy_bytes()
    (tmp_path / "default-policy.yaml").write_bytes(edited)
    assert builtin_policy(tmp_path).rules[0].block.severity_at_least is Severity.LOW
    assert builtin_policy().rules[0].block.severity_at_least is Severity.HIGH
    assert not list((ROOT / "bot" / "securecase" / "data").glob("default-policy.json"))


@pytest.mark.parametrize("name", ["default.yaml", "report-only.yaml", "strict.yaml"])
def test_shipped_policies_are_valid(name):
    loaded = load_policy((ROOT / "policies" / name).read_bytes(), origin=name)
    assert loaded.rules


def test_seed_gate():
    p = builtin_policy()
    blocked = evaluate(p, PR_MAIN, [finding("HIGH")])
    assert blocked.gate and blocked.decision == "block" and blocked.fails
    assert blocked.blocking_rules == ("no-high-into-main",)
    assert "no-high-into-main: 1 finding at HIGH or above (at most 0 allowed)" in blocked.reasons[0]
    assert not evaluate(p, PR_MAIN, [finding("MEDIUM")]).gate
    assert not evaluate(p, PR_DEV, [finding("CRITICAL")]).gate
    assert not evaluate(p, PUSH_MAIN, [finding("CRITICAL")]).gate


def test_ci_mode_records_block_but_does_not_fail():
    d = evaluate(builtin_policy(), PR_MAIN, [finding("CRITICAL")], mode=Mode.CI)
    assert d.gate and d.decision == "block" and not d.fails


def test_conditions():
    p = policy(
        """
version: 1
rules:
  - id: secrets
    block: {kinds: [secret]}
  - id: fixable
    when: {event: [pull_request], repos: ["acme/*"]}
    block: {severity_at_least: CRITICAL, fixable_only: true, sources: ["trivy-*"]}
    max_allowed: 1
  - id: pushes
    when: {event: push, branches: ["release/**"]}
    block: {severity_at_least: LOW}
"""
    )
    assert evaluate(p, PUSH_MAIN, [finding(kind="secret")]).blocking_rules == ("secrets",)
    two = [finding("CRITICAL", n=1), finding("CRITICAL", n=2)]
    assert evaluate(p, PR_MAIN, two).blocking_rules == ("fixable",)
    assert not evaluate(p, PR_MAIN, two[:1]).gate  # max_allowed 1
    unfixable = [finding("CRITICAL", fixed=None, n=i) for i in range(3)]
    assert not evaluate(p, PR_MAIN, unfixable).gate
    other_source = [finding("CRITICAL", source="grype", n=i) for i in range(3)]
    assert not evaluate(p, PR_MAIN, other_source).gate
    other_org = Subject(Provider.GITHUB, "other", "shop", pr=1, target_branch="main")
    assert not evaluate(p, other_org, two).gate
    release = Subject(Provider.GITHUB, "acme", "shop", branch="release/1/x")
    assert evaluate(p, release, [finding("LOW")]).blocking_rules == ("pushes",)


def test_repository_globs_ignore_case_as_github_does():
    p = policy(
        """
version: 1
rules:
  - id: acme-high
    when: {repos: ["acme/*"]}
    block: {severity_at_least: HIGH}
exceptions:
  - id: EXC-1
    match: {advisory: CVE-2024-0001, repos: ["Acme/Shop"]}
    reason: not reachable
    approved_by: "@acme/security"
    expires: 2999-01-01
"""
    )
    for org, repo in (("ACME", "shop"), ("Acme", "Shop"), ("acme", "SHOP")):
        subject = Subject(Provider.GITHUB, org, repo, pr=1, target_branch="main")
        assert evaluate(p, subject, [finding("HIGH")]).blocking_rules == ("acme-high",)
        # the exception names the repository in another case and still covers the finding
        assert not evaluate(p, subject, [finding("HIGH", n=1)], today=date(2026, 12, 3)).gate
    # branch and path globs stay case-sensitive, as git and file systems on CI runners are
    assert not glob_match("release/**", "Release/1") and not glob_match("src/*.py", "SRC/a.py")


def test_glob_semantics():
    assert glob_match("acme/*", "acme/shop")
    assert not glob_match("acme/*", "acme/shop/x")
    assert glob_match("release/**", "release/1/2")
    assert glob_match("v?", "v1") and not glob_match("v?", "v10")
    assert glob_match("a.b", "a.b") and not glob_match("a.b", "axb")
    # "**/" matches zero or more folders, as in gitignore and GitHub path filters
    assert glob_match("**/tests/**", "tests/a.py") and glob_match("**/tests/**", "x/y/tests/a")
    assert glob_match("src/**/*.py", "src/a.py") and glob_match("src/**/*.py", "src/a/b/c.py")
    assert not glob_match("src/**/*.py", "srca.py") and not glob_match("**/tests/**", "mytests/a")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 2\nrules: []\n", "policy.yaml:1: $.version"),
        (
            "version: 1\nrules:\n  - id: x\n    block: {severity_at_least: HIGHEST}\n",
            "policy.yaml:4: $.rules[0].block.severity_at_least",
        ),
        (
            "version: 1\nrules:\n  - id: x\n    block: {}\n    exceptionz: 1\n",
            "policy.yaml:3: $.rules[0]: Additional properties are not allowed ('exceptionz'",
        ),
        (
            "version: 1\nrules:\n  - id: a\n    block: {}\n  - id: a\n    block: {}\n",
            "policy.yaml:5: $.rules[1].id: duplicate rule id 'a' (first defined at line 3)",
        ),
        (
            "version: 1\nrules:\n  - id: a\n    when: {event: push, target_branches: [main]}\n"
            "    block: {}\n",
            "can never apply",
        ),
        ("version: 1\nmode: gate\nrules: []\n", "policy.yaml:2: $.mode"),
    ],
)
def test_invalid_policies_name_file_line_and_path(text, expected):
    with pytest.raises(PolicyError) as info:
        policy(text)
    assert any(expected in problem for problem in info.value.problems), info.value.problems


def test_yaml_syntax_error_has_line():
    with pytest.raises(PolicyError, match=r"policy.yaml:3"):
        policy("version: 1\nrules:\n  - id: a: b\n")


def test_empty_policy_is_refused():
    with pytest.raises(PolicyError, match="empty"):
        policy("")


severities = st.sampled_from(list(Severity))
findings_strategy = st.lists(
    st.builds(
        lambda s, k, n: finding(s.value, k.value, n=n),
        severities,
        st.sampled_from(list(Kind)),
        st.integers(0, 10_000),
    ),
    max_size=30,
)


@given(findings_strategy, findings_strategy)
def test_more_findings_never_unblock(base, extra):
    p = load_policy((ROOT / "policies" / "strict.yaml").read_bytes(), origin="strict.yaml")
    if evaluate(p, PR_MAIN, base).gate:
        assert evaluate(p, PR_MAIN, base + extra).gate


@given(findings_strategy, severities)
def test_severity_threshold_counts_exactly_the_worse_findings(items, threshold):
    p = policy(
        f"version: 1\nrules:\n  - id: t\n    block: {{severity_at_least: {threshold.value}}}\n"
        "    max_allowed: 0\n"
    )
    decision = evaluate(p, PUSH_MAIN, items)
    expected = sum(1 for f in items if f.severity.rank >= threshold.rank)
    assert len(decision.outcomes[0].matched) == expected
    assert decision.gate == (expected > 0)


def test_a_decision_says_which_rules_applied():
    p = builtin_policy()
    assert evaluate(p, PR_MAIN, [finding("LOW")]).applied_rules == ("no-high-into-main",)
    # a pull request into develop: the built-in rule is scoped to main, so nothing judged it
    unjudged = evaluate(p, PR_DEV, [finding("CRITICAL")])
    assert unjudged.applied_rules == () and not unjudged.gate


_GLOB_TEXT = st.text(alphabet="aAbBkK/.-_ !{}()@+|~*?[]\\ßİıK\u212a", max_size=8)


@settings(max_examples=3000, deadline=None)
@given(_GLOB_TEXT, _GLOB_TEXT, st.booleans())
def test_plain_patterns_match_as_wcmatch_says(pattern: str, value: str, ignore_case: bool) -> None:
    """A pattern without glob characters is compared directly (wcmatch is imported only for
    real globs); the answer must be wcmatch's own for every pattern and value."""
    from wcmatch import glob as wcglob

    flags = wcglob.GLOBSTAR | wcglob.DOTGLOB | (wcglob.IGNORECASE if ignore_case else 0)
    expected = bool(wcglob.globmatch(value, pattern, flags=flags))
    assert glob_match(pattern, value, ignore_case=ignore_case) == expected
