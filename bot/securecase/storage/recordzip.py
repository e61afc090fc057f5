"""A queued record carried as a workflow artifact: the zip ``actions/upload-artifact`` makes of
one queue entry's folder, read back into a queue entry.

The zip comes from a workflow run of the scanned repository, so it is untrusted input: only the
entry's own file names are accepted (``record.json``, ``report-<n>``, ``policy``, at the zip's
root: no folders, links or other names, so nothing can be written outside the entry), each file
is read with a size cap whatever the zip's headers claim, ``record.json`` must match
``record.schema.json``, and the entry id in the artifact's name must end in the digest of the
contents. Any problem is an ``InputError`` naming the artifact and the member.
"""

from __future__ import annotations

import io
import json
import re
import stat
import zipfile
from pathlib import Path
from typing import Any

from securecase.errors import InputError
from securecase.limits import MAX_KEPT_CHARS, MAX_KEPT_LINES, MAX_KEPT_PREFIXES
from securecase.storage.queue import (
    RECORD_FILE,
    QueuedRecord,
    entry_digest,
    record_digest,
)
from securecase.storage.schemas import RECORD, problems

#: An entry id as :meth:`RecordQueue.put` makes it: arrival second, instant, content digest.
ENTRY_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z?-[0-9]{20}-[0-9a-f]{20}$")
_REPORT_RE = re.compile(r"^report-(0|[1-9][0-9]{0,3})$")
#: record.json is a few hundred bytes, plus what its ingest read from the checkout at most
#: (characters written as JSON escapes of up to 12 bytes, and each line's keys and layout).
MAX_RECORD_JSON_BYTES = (
    64 * 1024 + 12 * (MAX_KEPT_CHARS + MAX_KEPT_PREFIXES * 2000) + 200 * MAX_KEPT_LINES
)
#: An explicit policy file is small too (the policy loader refuses larger ones).
MAX_POLICY_BYTES = 1024 * 1024


def unpack_record(
    data: bytes,
    entry_id: str,
    folder: Path,
    *,
    max_report_bytes: int,
    max_total_bytes: int,
    origin: str,
) -> QueuedRecord:
    """Write the record zipped in ``data`` into the new folder ``folder``; the queue entry.

    ``origin`` names the artifact in every message; ``max_report_bytes`` caps each report and
    ``max_total_bytes`` all files together, as read (not as the zip's headers claim)."""
    if not ENTRY_ID_RE.match(entry_id):
        raise InputError(f"{origin}: {entry_id!r} is not a queued record's id")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(f"{origin}: not a zip archive ({error})") from error
    with archive:
        files = _read_members(archive, origin, max_report_bytes, max_total_bytes)
    try:
        fields: Any = json.loads(files.get(RECORD_FILE, b"").decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise InputError(f"{origin}: {RECORD_FILE} is not JSON ({error})") from error
    found = problems(fields, RECORD, path=f"{origin}:{RECORD_FILE}")
    if found:
        raise InputError(f"{origin}: {RECORD_FILE} is not a queued record", problems=found)
    count = int(fields["reports"])
    expected = {RECORD_FILE, *(f"report-{n}" for n in range(count))}
    missing = sorted(expected - files.keys())
    extra = sorted(files.keys() - expected - {"policy"})
    if missing or extra:
        raise InputError(
            f"{origin}: {RECORD_FILE} names {count} report(s), but the zip "
            + (f"lacks {', '.join(missing)}" if missing else f"also holds {', '.join(extra)}")
        )
    reports = [files[f"report-{n}"] for n in range(count)]
    inputs = {k: v for k, v in fields.items() if k not in ("schema", "reports")}
    if record_digest(inputs, reports) != entry_digest(entry_id):
        raise InputError(
            f"{origin}: the record's contents do not match the digest in its name "
            f"({entry_digest(entry_id)}): changed or damaged after it was queued"
        )
    folder.mkdir(parents=True, mode=0o700)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return QueuedRecord(entry_id, folder, fields)


def _read_members(
    archive: zipfile.ZipFile, origin: str, max_report_bytes: int, max_total_bytes: int
) -> dict[str, bytes]:
    """Every member's bytes, after checking its name, kind and size."""
    files: dict[str, bytes] = {}
    total = 0
    for info in archive.infolist():
        name = info.filename
        where = f"{origin}: member {name!r}"
        if name != RECORD_FILE and name != "policy" and not _REPORT_RE.match(name):
            # The only names an entry has: anything else (a folder, a path that climbs out,
            # an absolute path) is not a record this version wrote.
            raise InputError(f"{where} is not a file of a queued record")
        # Unix file type bits, when the zip has them (zips made elsewhere may carry none).
        kind = stat.S_IFMT(info.external_attr >> 16)
        if info.is_dir() or kind not in (0, stat.S_IFREG):
            raise InputError(f"{where} is not a regular file")
        if name in files:
            raise InputError(f"{where} appears twice")
        if info.flag_bits & 0x1:
            raise InputError(f"{where} is encrypted")
        limit = (
            MAX_RECORD_JSON_BYTES
            if name == RECORD_FILE
            else MAX_POLICY_BYTES
            if name == "policy"
            else max_report_bytes
        )
        try:
            with archive.open(info) as member:
                # Read one byte past the cap: the header's size may lie, the stream does not.
                content = member.read(limit + 1)
        except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError) as error:
            raise InputError(f"{where} cannot be read ({error})") from error
        if len(content) > limit:
            raise InputError(f"{where} is larger than {limit:,} bytes")
        total += len(content)
        if total > max_total_bytes:
            raise InputError(f"{origin}: its files hold more than {max_total_bytes:,} bytes")
        files[name] = content
    return files
