"""How a scanner's raw report is stored: as it came, or gzip-compressed when large.

A 10,000-finding image report is tens of megabytes of JSON that compresses about tenfold, and
every changed rescan commits it again. Above :data:`GZIP_ABOVE` bytes it is stored as
``raw/<source><suffix>.gz`` (deterministic gzip: no file name, time stamp 0, so the same report
gives the same blob). GitHub refuses files above 100 MB: a report still larger once compressed
is refused before anything is committed.
"""

from __future__ import annotations

import gzip
import io

from securecase.errors import ReportError

GZIP_ABOVE = 1_000_000  # bytes of a raw report stored as they are
GITHUB_FILE_LIMIT = 100 * 1024 * 1024  # GitHub rejects pushes with a larger file


def deterministic_gzip(data: bytes) -> bytes:
    """gzip without a file name or time stamp: the same input always gives the same bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=6) as out:
        out.write(data)
    return buffer.getvalue()


def stored_raw(
    path: str, data: bytes, *, origin: str, limit: int = GITHUB_FILE_LIMIT
) -> tuple[str, bytes]:
    """The path and bytes to store the raw report ``data`` planned at ``path``."""
    if len(data) <= GZIP_ABOVE:
        return path, data
    packed = deterministic_gzip(data)
    if len(packed) > limit:
        raise ReportError(
            f"{origin}: {len(data)} bytes, {len(packed)} compressed: larger than the "
            f"{limit} bytes a file of a GitHub repository may have",
            hint="split the scan (one report per image or folder), or filter it "
            "(e.g. trivy --severity HIGH,CRITICAL) before ingesting it",
        )
    return path + ".gz", packed


def read_raw(path: str, data: bytes) -> bytes:
    """A stored raw report's content, whether it was stored compressed or not."""
    return gzip.decompress(data) if path.endswith(".gz") else data
