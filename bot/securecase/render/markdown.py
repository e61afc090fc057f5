"""The one Markdown summary of an ingest: the check run, the Actions job summary and
``ingest --output markdown`` all print it.

It leads with what to do (upgrade a package, fix on the target branch, or request an
exception), then the blocking findings in one table (advisory link, package or location, fixed
version, the policy rules they trip, new in this pull request or already on the target branch),
exceptions, the link to the case file, and the counts folded away. A byte budget, when given,
is kept by dropping table rows first, then cutting the text, with a note.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from securecase.domain.findings import SEVERITIES_WORST_FIRST
from securecase.domain.outcome import (
    BlockingFinding,
    IngestResult,
    blocking_findings,
    breakdown,
    incomplete_sources,
)
from securecase.render.phrases import (
    baseline_line,
    exception_lines,
    no_rule_note,
    sentence,
    verdict,
)

#: Where the cases repo keeps its policy (the origin of a policy read from there).
REPO_POLICY = "policy.yaml"
#: Blocking findings listed before "... and N more".
SHOWN_BLOCKING = 30
#: Upgrade lines listed under "What to do" before "... and N more".
SHOWN_UPGRADES = 10
TRUNCATION_NOTE = (
    "\n\n_…summary truncated to fit GitHub's size limit; the case file has everything._\n"
)
#: Advisory ids linked to their public page; anything else is shown as code, never linked.
_ADVISORY_PAGES = (
    (re.compile(r"CVE-\d{4}-\d+"), "https://nvd.nist.gov/vuln/detail/"),
    (re.compile(r"GHSA(-[0-9a-z]{4}){3}"), "https://github.com/advisories/"),
)
#: Characters that open Markdown syntax inside a line (emphasis, code, links and images,
#: table cells, strikethrough, headings, GitHub's math); escaped wherever text is shown.
_MD_SPECIAL = re.compile(r"[\\`*_\[\]|~!#$]")
#: What GitHub turns into a link by itself (extended autolinks): a scheme's ``://`` and ``www.``.
_AUTOLINK = re.compile(r"(?i)(?<=[a-z])(:)(?=//)|(?<![a-z0-9])(www)(\.)")
#: What opens a block (list, heading, setext underline, numbered list) at the start of a line.
_MD_LEADING = re.compile(r"^([-+=]|\d+(?=[.)]))")
_WHITESPACE = re.compile(r"\s+")
_BACKTICK_RUN = re.compile(r"`+")
#: Links only to web pages whose URL holds nothing Markdown or HTML could read otherwise.
_SAFE_URL = re.compile(r"https?://[A-Za-z0-9._~:/?#@!$&'*+,;=%-]+")


@dataclass(frozen=True, slots=True)
class Summary:
    """What the summary says about one ingest (see :func:`summary_of`).

    ``counts`` maps ``new`` (absent from the target branch's case), ``existing``, ``fixed``
    (by this scan) and ``excepted`` to counts keyed by lower-case severity; ``appeared`` and
    ``fixed`` count changes since the case's last scan.
    """

    case_key: str
    verdict: str
    status: str
    mode: str
    gate: bool
    fails: bool
    reasons: tuple[str, ...]
    appeared: int
    fixed: int
    counts: Mapping[str, Mapping[str, int]]
    blocking: tuple[BlockingFinding, ...]
    target_branch: str | None
    notes: tuple[str, ...]
    #: Sources whose scan said it did not complete (named in code spans, not as prose).
    incomplete: tuple[str, ...]
    policy_origin: str
    policy_blob: str
    case_path: str
    cases_commit: str | None
    case_url: str | None = None
    run_url: str | None = None
    #: The causes in a few words, e.g. "1 new CRITICAL, 3 findings past SLA" (empty: passes).
    headline: str = ""
    #: Per blocking rule id, why it counts a finding when that is time (SLA or age), e.g.
    #: "past SLA" — the table then shows each finding's age.
    timed_rules: Mapping[str, str] = field(default_factory=dict)
    #: Per finding id, days since it was first seen (as of this scan).
    ages: Mapping[str, int] = field(default_factory=dict)
    #: Web link to the policy file at the cases-repo commit, when known.
    policy_url: str | None = None
    #: Ids of the rules that judged the subject; empty: a pass by default, said out loud.
    rules_applied: tuple[str, ...] = ()
    #: Said first when no rule applied (see :func:`~securecase.render.phrases.no_rule_note`).
    no_rule_note: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def active(self) -> int:
        """Active findings: new plus existing."""
        return sum(self.counts["new"].values()) + sum(self.counts["existing"].values())


def summary_of(
    result: IngestResult, *, case_url: str | None = None, run_url: str | None = None
) -> Summary:
    """The summary facts of an ingest, with optional links to the case file and the run."""
    baseline = baseline_line(result)
    notes = ([baseline] if baseline else []) + exception_lines(result)
    blocking = blocking_findings(result)
    timed = _timed_rules(result)
    ages = _ages(result, blocking)
    return Summary(
        case_key=result.case.key,
        verdict=verdict(result),
        status=result.case.status.value,
        mode=result.decision.mode.value,
        gate=result.decision.gate,
        fails=result.decision.fails,
        reasons=result.decision.reasons,
        appeared=len(result.appeared),
        fixed=len(result.fixed),
        counts=breakdown(result),
        blocking=blocking,
        target_branch=result.case.subject.target_branch,
        notes=tuple(notes),
        incomplete=incomplete_sources(result),
        policy_origin=result.policy.origin,
        policy_blob=result.policy.blob,
        case_path=result.case_path,
        cases_commit=result.cases_commit,
        case_url=case_url,
        run_url=run_url,
        headline=_headline(result, blocking, timed),
        timed_rules=timed,
        ages=ages,
        policy_url=_policy_url(result, case_url),
        rules_applied=result.decision.applied_rules,
        no_rule_note=no_rule_note(result),
        warnings=result.warnings,
    )


def _timed_rules(result: IngestResult) -> dict[str, str]:
    """The blocking rules that select findings by time, with the limit they apply."""
    timed = {}
    for outcome in result.decision.outcomes:
        block = outcome.rule.block
        if not outcome.blocks:
            continue
        if block.sla_breached:
            timed[outcome.rule.id] = "past SLA"
        elif block.age_days_over is not None:
            timed[outcome.rule.id] = f"over {block.age_days_over} days"
    return timed


def _ages(result: IngestResult, blocking: Sequence[BlockingFinding]) -> dict[str, int]:
    """Days from first seen to this scan, for the blocking findings."""
    try:
        now = datetime.fromisoformat(result.case.updated_at.replace("Z", "+00:00"))
    except ValueError:
        return {}
    first_seen = {t.finding.id: t.first_seen.at for t in result.case.findings}
    ages = {}
    for item in blocking:
        try:
            seen = datetime.fromisoformat(first_seen[item.finding.id].replace("Z", "+00:00"))
        except (KeyError, ValueError):
            continue
        if (seen.tzinfo is None) == (now.tzinfo is None):
            ages[item.finding.id] = max((now - seen).days, 0)
    return ages


def _headline(
    result: IngestResult, blocking: Sequence[BlockingFinding], timed: Mapping[str, str]
) -> str:
    """The causes, worst first: new findings by severity, findings past their SLA or age
    limit, then those already on the target branch (or on the branch) by severity. Each
    finding counts once, under its most actionable cause."""
    if not result.decision.gate:
        return ""
    new: dict[str, int] = {}
    old: dict[str, int] = {}
    late = 0
    for item in blocking:
        # The most actionable cause first: new in this pull request, then past a time limit.
        untimed = [rule for rule in item.rules if rule not in timed]
        if not (item.new and untimed) and len(untimed) < len(item.rules):
            late += 1
            continue
        bucket = new if item.new else old
        bucket[item.finding.severity.value] = bucket.get(item.finding.severity.value, 0) + 1
    order = [s.value for s in SEVERITIES_WORST_FIRST]
    parts = [f"{new[s]} new {s}" for s in order if s in new]
    if late:
        parts.append(f"{late} finding{'s' if late != 1 else ''} past SLA")
    where = " on the target branch" if result.case.subject.is_pr else ""
    parts += [f"{old[s]} {s}{where}" for s in order if s in old]
    if not parts:  # a rule that blocks on a count of findings no table row shows
        return "; ".join(reason.partition(":")[0] for reason in result.decision.reasons)
    return ", ".join(parts)


def _policy_url(result: IngestResult, case_url: str | None) -> str | None:
    """The policy file at the case link's commit, when the policy is the cases repo's own
    (its origin is then the repo path ``policy.yaml``)."""
    if not case_url or result.policy.origin != REPO_POLICY:
        return None
    if not case_url.endswith("/" + result.case_path):
        return None
    return case_url[: -len(result.case_path)] + REPO_POLICY


def summary_markdown(data: Summary, *, max_bytes: int | None = None) -> str:
    """The Markdown summary; at most ``max_bytes`` UTF-8 bytes when given.

    Every text that comes from a scanner, a report, a policy or a command line is escaped
    (:func:`text`, :func:`code`, :func:`link`): no raw HTML, link, image or table syntax in it
    reaches the reader.
    """
    title = f"### securecase: {data.verdict}"
    if data.headline:
        title += f" — {text(data.headline)}"
    head = [
        title,
        "",
        f"Case {code(data.case_key)} — status **{data.status}**, {data.appeared} appeared and "
        f"{data.fixed} fixed since the last scan. Policy mode `{data.mode}`.",
        "",
    ]
    if data.no_rule_note:
        head += [f"> **Note:** {text(sentence(data.no_rule_note))}.", ""]
    if data.warnings:
        head += [f"- **Warning:** {text(w)}" for w in data.warnings] + [""]
    todo = _what_to_do(data)
    if todo:
        head += ["**To unblock**", "", *todo, _exception_line(data), ""]
    if data.reasons:
        head += ["**Why it blocks**", ""]
    for reason in data.reasons:
        rule_id, _, why = reason.partition(":")
        head.append(f"- Blocked by {code(rule_id)}:{text(why)}")  # noqa: PERF401 (clearer)
    if data.reasons:
        head.append("")
    tail = [_incomplete_line(data.incomplete)] if data.incomplete else []
    tail += [f"- {text(sentence(note))}" for note in data.notes]
    tail += ["", _link_line(data), "", *_counts_table(data)]
    return _fit("\n".join(head) + "\n", _blocking_table(data), "\n".join(tail) + "\n", max_bytes)


def text(value: str) -> str:
    """``value`` as literal Markdown prose on one line: ``&``, ``<`` and ``>`` as entities (no
    raw HTML), Markdown's inline syntax characters backslash-escaped (no code span, emphasis,
    link, image or table cell), ``://`` and ``www.`` escaped (no autolink), a block marker at
    its start escaped, line breaks as spaces."""
    flat = " ".join(_WHITESPACE.split(value)).strip()
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    flat = _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), flat)
    flat = _AUTOLINK.sub(lambda m: "\\:" if m.group(1) else m.group(2) + "\\.", flat)
    # "-" or "1." first on a line would open a list: escape the marker ("\\-", "1\\.").
    return _MD_LEADING.sub(
        lambda m: m.group(0) + "\\" if m.group(0)[0].isdigit() else "\\" + m.group(0), flat
    )


def code(value: str, *, cell: bool = False) -> str:
    """``value`` as an inline code span nothing in it can end: the fence is one backtick
    longer than the longest run of backticks inside, line breaks become spaces, and in a table
    cell (``cell``) pipes are escaped, which GitHub reads inside code spans too."""
    flat = " ".join(_WHITESPACE.split(value)).strip() or " "
    if cell:
        flat = flat.replace("|", "\\|")
    longest = max((len(run) for run in _BACKTICK_RUN.findall(flat)), default=0)
    fence = "`" * (longest + 1)
    if flat.startswith("`") or flat.endswith("`"):
        flat = f" {flat} "
    return f"{fence}{flat}{fence}"


def link(label: str, url: str | None) -> str:
    """``[label](url)`` for an http(s) URL made only of plain URL characters; anything else
    (``javascript:``, spaces, brackets) is not linked and shows as code."""
    if url and _SAFE_URL.fullmatch(url):
        return f"[{text(label)}]({url})"
    return code(label) if not url else f"{code(label)} ({code(url)})"


def _what_to_do(data: Summary) -> list[str]:
    upgrades: dict[tuple[str, str], list[str]] = {}
    on_target = without_fix = 0
    for item in data.blocking:
        package = item.finding.package
        if package is not None and package.fixed_version:
            upgrades.setdefault((package.name, package.fixed_version), []).append(
                item.finding.advisory
            )
        elif item.new is False:
            on_target += 1
        else:
            without_fix += 1
    lines = [
        f"- Upgrade {code(name)} to {code(fixed)} ({text(', '.join(sorted(set(ids))))})"
        for (name, fixed), ids in list(upgrades.items())[:SHOWN_UPGRADES]
    ]
    if len(upgrades) > SHOWN_UPGRADES:
        lines.append(f"- …and {len(upgrades) - SHOWN_UPGRADES} more upgrades in the table below")
    if on_target:
        branch = f" {code(data.target_branch)}" if data.target_branch else ""
        lines.append(
            f"- Fix on the target branch{branch}: {on_target} blocking finding(s) without a "
            "fixed version are already there"
        )
    if without_fix:
        lines.append(
            f"- Fix the code or request a policy exception: {without_fix} blocking finding(s) "
            "have no fixed version"
        )
    return lines


def _exception_line(data: Summary) -> str:
    """Where an exception is requested: the policy, changed by pull request."""
    policy = f"[`{REPO_POLICY}`]({data.policy_url})" if data.policy_url else "the policy"
    return (
        f"- Or accept the risk for a while: request an exception in {policy} by pull request "
        "to the cases repo (approved, with an expiry)"
    )


def advisory_link(advisory: str) -> str:
    """The advisory id as Markdown, linked to its public page when it is a CVE or GHSA id."""
    shown = code(advisory, cell=True)
    for pattern, page in _ADVISORY_PAGES:
        if pattern.fullmatch(advisory):
            return f"[{shown}]({page}{advisory})"
    return shown


def _where(item: BlockingFinding) -> str:
    finding = item.finding
    if finding.package is not None:
        return f"{finding.package.name} {finding.package.version or ''}".strip()
    if finding.location is None:
        return ""
    where = finding.location.path or finding.location.url or ""
    if finding.location.path and finding.location.start_line:
        where += f":{finding.location.start_line}"
    return where


def _novelty(item: BlockingFinding) -> str:
    if item.new is None:
        return "-"
    return "new in this PR" if item.new else "on the target branch"


def _blocking_table(data: Summary) -> list[str]:
    blocking = data.blocking
    if not blocking:
        return []
    rows = [
        "| severity | advisory | package → fixed in, or location | policy rule | new? |",
        "|---|---|---|---|---|",
    ]
    for item in blocking[:SHOWN_BLOCKING]:
        finding = item.finding
        fixed = finding.package.fixed_version if finding.package else None
        where = code(_where(item), cell=True)
        if finding.package is not None:
            where += f" → {code(fixed, cell=True)}" if fixed else " → no fix yet"
        rows.append(
            f"| {finding.severity.value} | {advisory_link(finding.advisory)} "
            f"| {where} | {_rules_cell(data, item)} | {_novelty(item)} |"
        )
    if len(blocking) > SHOWN_BLOCKING:
        more = len(blocking) - SHOWN_BLOCKING
        rows += ["", f"…and {more} more blocking finding(s) in the case file."]
    return [*rows, ""]


def _rules_cell(data: Summary, item: BlockingFinding) -> str:
    """The rules a finding trips; for a rule about time, the finding's age too."""
    cells = []
    for rule in item.rules:
        cell = code(rule, cell=True)
        limit = data.timed_rules.get(rule)
        age = data.ages.get(item.finding.id)
        if limit is not None and age is not None:
            cell += f" ({age} days old, {text(limit)})"
        cells.append(cell)
    return ", ".join(cells)


def _incomplete_line(names: tuple[str, ...]) -> str:
    noun = "source" if len(names) == 1 else "sources"
    listed = ", ".join(code(name) for name in names)
    return (
        f"- Incomplete: the scanner of {noun} {listed} reported that the scan did not "
        "complete; its earlier findings stay open and nothing it no longer reports counts as "
        "fixed."
    )


def _link_line(data: Summary) -> str:
    at = f" at cases commit {code(data.cases_commit[:12])}" if data.cases_commit else ""
    line = f"Case file: {link(data.case_path, data.case_url)}{at}."
    line += f" Policy {code(data.policy_origin)} (blob {code(data.policy_blob[:12])})."
    if data.run_url:
        line += f" Scanned in {link('this run', data.run_url)}."
    return line


def _counts_table(data: Summary) -> list[str]:
    header = " | ".join(s.value for s in SEVERITIES_WORST_FIRST)
    return [
        "<details><summary>Counts</summary>",
        "",
        f"| findings | {header} | total |",
        "|---|" + "---:|" * (len(SEVERITIES_WORST_FIRST) + 1),
        *(_count_row(label, counts) for label, counts in data.counts.items()),
        "",
        "</details>",
    ]


def _count_row(label: str, counts: Mapping[str, int]) -> str:
    cells = " | ".join(str(counts.get(s.count_key, 0)) for s in SEVERITIES_WORST_FIRST)
    return f"| {label} | {cells} | {sum(counts.values())} |"


def _fit(head: str, table: Sequence[str], tail: str, limit: int | None) -> str:
    """Head, table, tail; within ``limit`` bytes by dropping table rows, then cutting text."""
    text = head + _joined(table) + tail
    if limit is None or size(text) <= limit:
        return text
    note = size(TRUNCATION_NOTE)
    rows = list(table)
    while rows and size(head + _joined(rows) + tail) + note > limit:
        rows.pop()
    text = head + _joined(rows) + tail
    if size(text) + note > limit:
        text = clip_bytes(text, max(limit - note, 0))
    return clip_bytes(text + TRUNCATION_NOTE, limit)


def _joined(lines: Sequence[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""


def size(text: str) -> int:
    """UTF-8 size of ``text`` in bytes."""
    return len(text.encode("utf-8"))


def clip_bytes(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")
