"""Reading many case folders of one commit: one tree listing, one batch of blobs, the cache.

The reading commands (``cases list``, ``cases show``, ``policy diff``, ``sweep``, ``report``)
look at thousands of case folders. They list the folders once (``ls-tree``: blob ids of the
case files only), ask the parse cache (:mod:`securecase.storage.parsecache`) for every
``case.yaml`` blob at once, and read the rest in one ``git cat-file --batch`` stream: each
case is parsed, handed out and let go before the next, so findings are held one case at a
time. What is parsed and validated here is remembered by blob id: a ``case.yaml`` as its JSON
document and as the summary a listing prints, a ``findings.json`` as valid; a later run
decodes JSON instead of parsing YAML and skips the schema checks. Results are the same with
or without the cache (tests/test_parsecache.py).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from securecase.domain.case import Case, CaseHeader, CaseSummary
from securecase.domain.subjects import CASES_ROOT
from securecase.errors import CaseFileError
from securecase.storage.casefile import (
    CASE_FILE,
    FINDINGS_FILE,
    case_from_documents,
    case_with_findings,
    case_yaml_document,
    findings_document_of,
    findings_missing,
    header_from_document,
    summary_document,
    summary_from_document,
)
from securecase.storage.caseparse import parse_case_yamls, workers_for
from securecase.storage.parsecache import CASE_DOC, CASE_SUMMARY, FINDINGS_OK, ParseCache
from securecase.storage.store import CasesStore


@dataclass(frozen=True, slots=True)
class CaseFolder:
    """A case folder at one commit: its path and the blob ids of its two files."""

    folder: str
    case_blob: str
    findings_blob: str | None

    @property
    def path(self) -> str:
        """The folder's ``case.yaml``, relative to the repository root."""
        return f"{self.folder}/{CASE_FILE}"


def case_folders(store: CasesStore, head: str | None) -> list[CaseFolder]:
    """Every folder holding a ``case.yaml`` at ``head``, sorted by path (one ``ls-tree``)."""
    listed = store.blob_ids(head, CASES_ROOT, names=(CASE_FILE, FINDINGS_FILE))
    suffix = "/" + CASE_FILE
    return [
        CaseFolder(path[: -len(suffix)], oid, listed.get(path[: -len(CASE_FILE)] + FINDINGS_FILE))
        for path, oid in sorted(listed.items())
        if path.endswith(suffix)
    ]


class CaseReader:
    """Reads case folders of one cases store through one parse cache (see module docstring)."""

    def __init__(self, store: CasesStore, cache: ParseCache) -> None:
        self._store = store
        self._cache = cache

    def summaries(
        self, folders: Sequence[CaseFolder]
    ) -> Iterator[tuple[CaseFolder, CaseSummary | CaseFileError]]:
        """The listing line of each folder (``cases list``), in the order given, or why its
        ``case.yaml`` is unreadable. The cache keeps these lines apart from whole documents,
        so a warm listing decodes only what it prints."""
        known = self._cache.documents(CASE_SUMMARY, (f.case_blob for f in folders))
        unknown = self._case_docs([f for f in folders if f.case_blob not in known], findings=False)
        try:
            for folder in folders:
                summary = known.get(folder.case_blob)
                if summary is None:
                    _, doc = next(unknown)
                    if isinstance(doc, CaseFileError):
                        yield folder, doc
                        continue
                    summary = summary_document(doc[0])
                    self._cache.put_document(CASE_SUMMARY, folder.case_blob, summary)
                yield folder, summary_from_document(summary)
        finally:
            unknown.close()

    def cases(
        self, folders: Sequence[CaseFolder]
    ) -> Iterator[tuple[CaseFolder, Case | CaseFileError]]:
        """Each folder's whole case (``case.yaml`` and ``findings.json``), in the order given,
        or why it is unreadable."""
        for folder, case in self.cases_where(folders, lambda _: True):
            assert not isinstance(case, CaseHeader)
            yield folder, case

    def cases_where(
        self, folders: Sequence[CaseFolder], whole: Callable[[CaseHeader], bool]
    ) -> Iterator[tuple[CaseFolder, Case | CaseHeader | CaseFileError]]:
        """:meth:`cases`, but a folder whose ``case.yaml`` does not pass ``whole`` comes as its
        header alone: its ``findings.json`` is neither parsed nor checked (a command that
        judges open cases only has no use for a closed one's findings)."""
        blobs = [f.findings_blob for f in folders if f.findings_blob]
        valid = set(self._cache.get(FINDINGS_OK, blobs))
        for folder, doc in self._case_docs(folders, findings=True):
            if isinstance(doc, CaseFileError):
                yield folder, doc
                continue
            case_doc, findings = doc
            header = header_from_document(case_doc)
            if not whole(header):
                yield folder, header
                continue
            if folder.findings_blob is None or findings is None:
                yield folder, findings_missing(folder.folder)
                continue
            checked = folder.findings_blob in valid
            try:
                findings_doc = findings_document_of(findings, folder=folder.folder, checked=checked)
            except CaseFileError as error:
                yield folder, error
                continue
            if not checked:
                self._cache.put(FINDINGS_OK, folder.findings_blob, b"")
                valid.add(folder.findings_blob)
            yield folder, case_with_findings(header, findings_doc)

    def finish(self) -> None:
        """Write what was learnt to the cache."""
        self._cache.flush()

    def _case_docs(
        self, folders: Sequence[CaseFolder], *, findings: bool
    ) -> Generator[
        tuple[CaseFolder, tuple[dict[str, Any], bytes | None] | CaseFileError], None, None
    ]:
        """(validated case.yaml document, findings.json bytes when asked) per folder, in the
        order given: cached documents as they are, the rest read in one stream and parsed."""
        known = self._cache.documents(CASE_DOC, (f.case_blob for f in folders))
        order: list[str] = []
        for folder in folders:
            if folder.case_blob not in known:
                order.append(folder.case_blob)
            if findings and folder.findings_blob:
                order.append(folder.findings_blob)
        stream = self._store.iter_blobs(order)

        def read() -> Iterator[tuple[tuple[CaseFolder, bytes | None], str, bytes | None, int]]:
            # Each folder's case.yaml bytes to parse (None when cached) and, when asked, its
            # findings.json to hand out beside the document, as the stream gives them.
            for folder in folders:
                case_yaml = None if folder.case_blob in known else next(stream)[1]
                wanted = findings and folder.findings_blob
                findings_data = next(stream)[1] if wanted else None
                yield (folder, findings_data), folder.folder, case_yaml, len(findings_data or b"")

        parsed = parse_case_yamls(read(), workers=workers_for(len(folders) - len(known)))
        try:
            for (folder, findings_data), result in parsed:
                if isinstance(result, CaseFileError):
                    yield folder, result
                    continue
                if result is None:
                    doc = known[folder.case_blob]
                else:
                    doc = result
                    self._cache.put_document(CASE_DOC, folder.case_blob, doc)
                yield folder, (doc, findings_data)
        finally:
            parsed.close()
            stream.close()


def parse_case(
    cache: ParseCache, folder: CaseFolder, case_yaml: bytes, findings: bytes | None
) -> Case:
    """The case in one folder's bytes (read already, e.g. to be printed), through the cache."""
    known = cache.documents(CASE_DOC, [folder.case_blob]).get(folder.case_blob)
    if known is None:
        doc, first_layout = case_yaml_document(case_yaml, folder=folder.folder)
        if first_layout is None:
            cache.put_document(CASE_DOC, folder.case_blob, doc)
    else:
        doc = known
    if findings is None or folder.findings_blob is None:
        raise findings_missing(folder.folder)
    checked = bool(cache.get(FINDINGS_OK, [folder.findings_blob]))
    findings_doc = findings_document_of(findings, folder=folder.folder, checked=checked)
    if not checked:
        cache.put(FINDINGS_OK, folder.findings_blob, b"")
    return case_from_documents(doc, findings_doc)
