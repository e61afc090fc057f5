"""Plain typed data shared by parsers, the case, and the policy: no I/O here."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """Finding severity; ``rank`` orders them (UNKNOWN lowest, below INFO)."""

    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"
    INFO = "INFO"
    UNKNOWN = "UNKNOWN"

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self]

    def at_least(self, other: Severity) -> bool:
        """True when this severity is ``other`` or worse."""
        return self.rank >= other.rank

    @property
    def count_key(self) -> str:
        """The lower-case name used in ``counts`` mappings."""
        return _COUNT_KEY[self]


#: Severity → rank (UNKNOWN 0 ... CRITICAL 5); the mapping is faster than ``.rank`` in loops.
SEVERITY_RANK = {
    Severity.UNKNOWN: 0,
    Severity.INFO: 1,
    Severity.LOW: 2,
    Severity.MEDIUM: 3,
    Severity.HIGH: 4,
    Severity.CRITICAL: 5,
}

# Looked up, not computed: counting tens of thousands of findings reads these in a loop.
_COUNT_KEY = {s: s.value.lower() for s in Severity}

#: Severities from worst to least, the order used for counts and sorting.
SEVERITIES_WORST_FIRST: tuple[Severity, ...] = tuple(
    sorted(Severity, key=lambda s: s.rank, reverse=True)
)


class Kind(StrEnum):
    """What sort of problem a finding is."""

    VULNERABILITY = "vulnerability"
    MISCONFIGURATION = "misconfiguration"
    SECRET = "secret"
    CODE = "code"
    DAST = "dast"


class ReportFormat(StrEnum):
    """Scanner report formats securecase can read."""

    TRIVY = "trivy"
    SARIF = "sarif"
    ZAP = "zap"


@dataclass(frozen=True, slots=True)
class Package:
    """The vulnerable package a finding is about."""

    name: str
    version: str | None = None
    fixed_version: str | None = None
    purl: str | None = None


@dataclass(frozen=True, slots=True)
class Location:
    """Where a finding is: a file region, or a URL for DAST."""

    path: str | None = None
    start_line: int | None = None
    end_line: int | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Instance:
    """One place a DAST alert was seen: HTTP method, URI (query values removed), parameter."""

    method: str | None = None
    uri: str | None = None
    param: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One normalized finding from one source.

    ``id`` is the stable fingerprint (see :func:`fingerprint`); everything else is what the
    scanner said this time and may change between scans without changing the identity.
    """

    id: str
    source: str
    kind: Kind
    advisory: str
    severity: Severity
    title: str
    package: Package | None = None
    location: Location | None = None
    cvss: float | None = None
    #: Suppressed by the scanner's own triage (SARIF accepted suppressions, ZAP false
    #: positives): kept in the case for the record, but never counted or gated.
    suppressed: bool = False
    #: The scanner's confidence in the finding, as it words it (e.g. high, medium, low).
    confidence: str | None = None
    #: Weakness classes, e.g. ``("CWE-79",)``.
    cwe: tuple[str, ...] = ()
    #: WASC threat classification id (ZAP), e.g. ``"WASC-8"``.
    wasc: str | None = None
    #: Where a DAST alert was seen, capped; ``instance_count`` is the uncapped number.
    instances: tuple[Instance, ...] = ()
    instance_count: int | None = None

    @property
    def fixable(self) -> bool:
        return self.package is not None and bool(self.package.fixed_version)


@dataclass(frozen=True, slots=True)
class Report:
    """A parsed scanner report: findings plus what to store as the raw copy.

    ``raw`` holds the bytes that go into the cases repo: the file as given, or, when the
    report contained secrets, a copy with the matched text masked.
    """

    format: ReportFormat
    source: str
    tool: str
    tool_version: str | None
    scanned_at: str | None
    artifact_name: str | None
    artifact_type: str | None
    image_digest: str | None
    findings: tuple[Finding, ...]
    raw: bytes
    raw_suffix: str
    path: str
    #: Why the scanner says this scan did not complete (empty when it did). An incomplete
    #: report adds what it found but resolves nothing: its silence proves no fix.
    incomplete: tuple[str, ...] = ()
    #: The slot a case written before default slots were derived from the artifact used for
    #: this report (None when the slot was given, or is the same): the ingest service keeps
    #: using it for the same artifact, so finding ids do not change.
    legacy_source: str | None = None
    #: Harmless off-spec fields the parser dropped, one line per kind of problem.
    warnings: tuple[str, ...] = ()
    #: (finding id, the id an earlier identity scheme gave the same finding), where they
    #: differ: a case written before the scheme changed is mapped over on its next scan.
    former_ids: tuple[tuple[str, str], ...] = ()
    #: What identity read from the scanned checkout (SARIF results without a snippet): each
    #: flagged line as (repo-relative path, line, content), and the path prefixes inferred
    #: from the files there. A record queued for later keeps them: its fold has no checkout.
    checkout_lines: tuple[tuple[str, int, str], ...] = ()
    checkout_prefixes: tuple[str, ...] = ()


def fingerprint(source: str, *identity: str) -> str:
    """Stable finding id: 16 hex digits of SHA-256 over the source name and identity parts.

    Identity parts must exclude anything that changes without the problem changing (installed
    version, image tag, line numbers where a better anchor exists, report order).
    """
    digest = hashlib.sha256("\x1f".join((source, *identity)).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]
