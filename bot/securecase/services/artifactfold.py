"""Records queued on GitHub-hosted runners, kept as workflow artifacts, folded in by the sweep.

A hosted runner's disk goes with the job, so a record an ingest there could not push is
uploaded by the Action as an artifact of the run (``securecase-record-<entry id>``: the queue
entry's folder, zipped). ``securecase sweep --fold-artifacts`` then, for each repository with
a folder in the cases repo (or matching ``--repo``):

1. lists its record artifacts, downloads each and reads it back as a queue entry, checked
   (:mod:`securecase.storage.recordzip`); an artifact that fails a check is reported by name
   and kept, and the sweep exits 2 at the end (fail closed: nothing is dropped unseen);
2. asks the cases repo's history which records already landed: every commit that lands a
   queued record names it (``Securecase-Record: <digest>``), so a record whose artifact
   outlived its landing (a sweep that died before deleting it) is not applied twice;
3. folds the others through the ingest's own planning, one commit each, in one push;
4. deletes an artifact only once its record is in the cases repo (landed now or before).

A record that names another repository than the one holding the artifact, or that a fork's
pull request run uploaded, is refused: artifacts are writable by any run of the repository,
and a fork's run has no business writing to the cases repo.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from securecase.errors import GitHubError, InputError
from securecase.github.artifacts import ArtifactClient, RecordArtifact
from securecase.scanners.jsonload import DEFAULT_MAX_REPORT_BYTES
from securecase.services.ingest import (
    POLICY_FILE,
    WaitingRecord,
    landed_records,
    parse_time,
    read_queued,
)
from securecase.storage.queue import QueuedRecord, entry_digest
from securecase.storage.recordzip import unpack_record
from securecase.storage.repos import open_store
from securecase.storage.store import CasesStore, GitIdentity

#: A record artifact's zip holds one scan's reports; the download stops past this size.
MAX_ARTIFACT_BYTES = 4 * DEFAULT_MAX_REPORT_BYTES
#: The history read for landed records starts this long before the oldest record was queued
#: (runner clocks drift; the committer date of the landing is later anyway).
HISTORY_MARGIN = timedelta(days=1)
PERMISSION_HINT = (
    "the sweep's token needs actions: read (list, download) and actions: write (delete) on "
    "every scanned repository (a GitHub App installation token or a fine-grained token)"
)


@dataclass(frozen=True)
class ArtifactFoldRequest:
    """What to fold: the cases repo, the repositories whose artifacts to read, how to push."""

    cases_repo: str
    repos: tuple[str, ...]
    identity: GitIdentity
    push_timeout: float = 120.0
    max_artifact_bytes: int = MAX_ARTIFACT_BYTES


@dataclass(frozen=True)
class RefusedArtifact:
    """An artifact that is not a record this sweep can fold, and why; it is kept."""

    repo: str
    name: str
    reason: str


@dataclass(frozen=True)
class ArtifactFoldResult:
    """What folding did: artifacts whose records landed now, those that had landed before,
    those deleted, those refused, the commits made, and warnings (records that stay)."""

    landed: tuple[str, ...] = ()
    already_landed: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    refused: tuple[RefusedArtifact, ...] = ()
    commits: int = 0
    api_calls: int = 0
    warnings: tuple[str, ...] = ()


def repos_with_cases(cases_repo: str) -> list[str]:
    """``org/name`` of every GitHub repository with a folder in the cases repo (trees only)."""
    with open_store(cases_repo, paths=[], list_tree=True) as store:
        head = store.snapshot().head
        folders = [
            repo
            for org in store.subfolders(head, "cases/github")
            for repo in store.subfolders(head, org)
        ]
    return sorted(f.removeprefix("cases/github/") for f in folders)


def fold_artifacts(request: ArtifactFoldRequest, client: ArtifactClient) -> ArtifactFoldResult:
    """Fold the records of every record artifact of ``request.repos`` (see the module)."""
    refused: list[RefusedArtifact] = []
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="securecase-artifacts-") as scratch:
        read: list[tuple[RecordArtifact, QueuedRecord]] = []
        for repo in request.repos:
            try:
                listed = client.record_artifacts(repo)
            except GitHubError as error:
                # An API failure is a warning, as everywhere in the sweep: the records wait in
                # their artifacts, and every sweep says so until the token reaches them.
                warnings.append(
                    f"cannot list the artifacts of {repo} ({error.message}); its queued "
                    f"records wait: {PERMISSION_HINT}"
                )
                continue
            for artifact in listed:
                if artifact.expired:
                    # GitHub removed its content: nothing left to fold, and no way to tell
                    # whether its record landed before. Said every sweep until GitHub drops it.
                    warnings.append(
                        f"artifact {artifact.name} of {repo} expired before a sweep folded it: "
                        "its record is lost unless it landed earlier (keep record-retention-days "
                        "above the sweep's interval)"
                    )
                    continue
                problem, entry = _read_artifact(artifact, client, request, Path(scratch))
                if entry is None:
                    refused.append(RefusedArtifact(repo, artifact.name, problem))
                else:
                    read.append((artifact, entry))
        # Oldest first (an entry id starts with its arrival), so two records of one case land
        # in the order they were made; one record carried twice (a re-uploaded artifact) once.
        read.sort(key=lambda pair: (pair[1].entry_id, pair[0].id))
        carriers: dict[str, list[RecordArtifact]] = {}
        waiting: list[WaitingRecord] = []
        for artifact, entry in read:
            if entry.entry_id in carriers:
                carriers[entry.entry_id].append(artifact)
                continue
            ready, unread = read_queued([entry], foreign_identity=request.identity)
            if unread:
                refused.extend(RefusedArtifact(artifact.repo, artifact.name, w) for w in unread)
                continue
            carriers[entry.entry_id] = [artifact]
            waiting.extend(ready)
        if not waiting:
            return ArtifactFoldResult(
                refused=tuple(refused), api_calls=len(client.calls), warnings=tuple(warnings)
            )
        paths = [POLICY_FILE] + [p for entry in waiting for p in entry.paths]
        with open_store(
            request.cases_repo, identity=request.identity, paths=paths, timeout=request.push_timeout
        ) as store:
            before = _landed_before(store, waiting)
            already = [e.entry_id for e in waiting if entry_digest(e.entry_id) in before]
            todo = [e for e in waiting if entry_digest(e.entry_id) not in before]
            commits = 0
            landed: tuple[str, ...] = ()
            if todo:
                # A refused push raises: nothing landed, every artifact stays for the next sweep.
                done = store.update_batch([entry.compute for entry in todo])
                landed, stays = landed_records(todo, done.results)
                warnings.extend(stays)
                commits = sum(c is not None for c in done.commits)
    deleted = []
    for entry_id in (*already, *landed):
        for artifact in carriers[entry_id]:
            try:
                client.delete(artifact)
                deleted.append(artifact.name)
            except GitHubError as error:
                warnings.append(
                    f"artifact {artifact.name} of {artifact.repo}: its record landed, but it "
                    f"could not be deleted ({error.message}); the next sweep deletes it"
                )
    return ArtifactFoldResult(
        landed=tuple(a.name for e in landed for a in carriers[e]),
        already_landed=tuple(a.name for e in already for a in carriers[e]),
        deleted=tuple(deleted),
        refused=tuple(refused),
        commits=commits,
        api_calls=len(client.calls),
        warnings=tuple(warnings),
    )


def _read_artifact(
    artifact: RecordArtifact, client: ArtifactClient, request: ArtifactFoldRequest, scratch: Path
) -> tuple[str, QueuedRecord | None]:
    """The artifact's record as a queue entry, or why it is refused."""
    if artifact.same_repository is False:
        return "uploaded by a pull request run from a fork: not trusted to write cases", None
    if artifact.size > request.max_artifact_bytes:
        return f"{artifact.size:,} bytes, above the limit of {request.max_artifact_bytes:,}", None
    try:
        data = client.download(artifact, request.max_artifact_bytes)
    except GitHubError as error:
        return f"cannot be downloaded: {error.message}", None
    try:
        entry = unpack_record(
            data,
            artifact.entry_id,
            scratch / str(artifact.id),
            max_report_bytes=DEFAULT_MAX_REPORT_BYTES,
            max_total_bytes=request.max_artifact_bytes,
            origin=f"artifact {artifact.name}",
        )
    except InputError as error:
        details = "; ".join(error.problems[:3])
        return error.message + (f" ({details})" if details else ""), None
    subject = entry.fields["subject"]
    named = f"{subject['org']}/{subject['repo']}"
    if subject["provider"] != "github" or named.lower() != artifact.repo.lower():
        return f"its record is for {subject['provider']} {named}, not {artifact.repo}", None
    return "", entry


def _landed_before(store: CasesStore, waiting: Sequence[WaitingRecord]) -> set[str]:
    """The digests of queued records that commits of the cases repo already landed, read from
    the ``Securecase-Record`` trailers of the commits since the oldest record was queued."""
    head = store.snapshot().head
    if head is None:
        return set()
    oldest = min(parse_time(entry.received_at) for entry in waiting) - HISTORY_MARGIN
    since = oldest.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = store.log(
        [
            "-z",
            "--format=%(trailers:key=Securecase-Record,valueonly)",
            f"--since={since}",
            head,
            "--",
            "cases",
        ],
        path="cases",
        since=since,
    )
    values = out.decode("utf-8", "replace").replace("\0", "\n").split()
    return {value for value in values if value.isalnum()}
