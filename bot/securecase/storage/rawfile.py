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
from collections.abc import Callable
from typing import TYPE_CHECKING

from securecase.errors import ReportError

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

GZIP_ABOVE = 1_000_000  # bytes of a raw report stored as they are
GITHUB_FILE_LIMIT = 100 * 1024 * 1024  # GitHub rejects pushes with a larger file


def deterministic_gzip(data: bytes) -> bytes:
    """gzip without a file name or time stamp: the same input always gives the same bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=6) as out:
        out.write(data)
    return buffer.getvalue()


def stored_path(path: str, data: bytes) -> str:
    """Where the raw report ``data`` planned at ``path`` is stored: as it is, or compressed
    (``.gz``) when large."""
    return path + ".gz" if len(data) > GZIP_ABOVE else path


def packed_raw(
    data: bytes,
    *,
    origin: str,
    limit: int = GITHUB_FILE_LIMIT,
    pack: Callable[[bytes], bytes] = deterministic_gzip,
) -> bytes:
    """``data`` compressed for storage (by ``pack``, :func:`deterministic_gzip` or a result
    of it computed beforehand); refused when even compressed it is above the file limit."""
    packed = pack(data)
    if len(packed) > limit:
        raise ReportError(
            f"{origin}: {len(data)} bytes, {len(packed)} compressed: larger than the "
            f"{limit} bytes a file of a GitHub repository may have",
            hint="split the scan (one report per image or folder), or filter it "
            "(e.g. trivy --severity HIGH,CRITICAL) before ingesting it",
        )
    return packed


class RawPacker:
    """Large raw reports compressed in a background thread from the moment they are read.

    zlib lets go of the GIL while it compresses, so a report's gzip (tens of milliseconds per
    megabyte) runs beside its parsing, its masking and the case merge, and is waited for only
    when its bytes go into a commit. Reports small enough to be stored as they are start no
    thread.
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._started: list[tuple[bytes, Future[bytes]]] = []

    def start(self, data: bytes) -> None:
        """Begin compressing ``data`` when it would be stored compressed."""
        if len(data) <= GZIP_ABOVE:
            return
        if self._pool is None:
            # Imported here: most reports are small, and the import costs milliseconds.
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="securecase-gzip")
        self._started.append((data, self._pool.submit(deterministic_gzip, data)))

    def packed(self, data: bytes) -> bytes:
        """:func:`deterministic_gzip` of ``data``: the background result when ``data`` is what
        :meth:`start` was given (masking seldom changes a report), else compressed now."""
        for started, future in self._started:
            if started is data or started == data:
                return future.result()
        return deterministic_gzip(data)


def read_raw(path: str, data: bytes) -> bytes:
    """A stored raw report's content, whether it was stored compressed or not."""
    return gzip.decompress(data) if path.endswith(".gz") else data
