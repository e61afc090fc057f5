"""Parsing many ``case.yaml`` files at once, in worker processes when there are enough.

PyYAML builds a ``case.yaml`` document in about 0.8 ms of CPU (libyaml's parser, then PyYAML's
constructor, which is Python), so a cold read of 10,000 case folders spends about 8 s there in
one process. The files are independent of each other: from :data:`POOL_MINIMUM` files on,
they are parsed by a pool of worker processes, one per core this process may run on, in
chunks. What comes back is plain data, the validated document or the CaseFileError naming the
file and line, in the order the files were given: a reader sees the same results either way.
Fewer files are parsed in this process, as are all of them where only one core is available:
starting workers costs more than they would save.

Memory stays bounded: at most :data:`AHEAD` chunks per worker are in flight, and a chunk is
closed early once the bytes it holds (with those the caller keeps beside each file, e.g. its
folder's ``findings.json``) reach :data:`CHUNK_BYTES`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from securecase.errors import CaseFileError, StoreError
from securecase.storage.casefile import case_yaml_document

if TYPE_CHECKING:
    from concurrent.futures import Future

#: From this many files to parse on, a pool of workers (each worker costs about 0.2 s of CPU
#: to start; 1,000 files are about 0.8 s of parsing).
POOL_MINIMUM = 1000
#: At most this many workers: the reading process's own share (reading git, the cache, the
#: output) is then the longer part of the run, and each worker holds memory of its own.
MAX_WORKERS = 4
#: Files per task sent to a worker (fewer tasks, less overhead per file).
CHUNK_FILES = 100
#: A chunk is sent early when the bytes it holds reach this.
CHUNK_BYTES = 4 * 1024 * 1024
#: Seconds between a worker's checks that the process that started it is still there.
PARENT_CHECK = 0.5
#: Chunks in flight per worker: enough to keep every worker busy, few enough to bound memory.
AHEAD = 2

Tag = TypeVar("Tag")
#: A validated ``case.yaml`` document (plain JSON data), or why the file is unreadable.
Parsed = dict[str, Any] | CaseFileError


def parse_case_yaml(folder: str, data: bytes, *, old_layout: bool = False) -> Parsed:
    """The validated document of one folder's ``case.yaml`` bytes, or the CaseFileError
    (``folder/case.yaml:LINE``) saying why it is unreadable. With ``old_layout``, a file of
    the first layout is read too (its document without the findings)."""
    try:
        doc, _ = case_yaml_document(data, folder=folder, old_layout=old_layout)
    except CaseFileError as error:
        return error
    return doc


def _parse_chunk(files: list[tuple[str, bytes | None]], old_layout: bool) -> list[Parsed | None]:
    return [
        None if data is None else parse_case_yaml(folder, data, old_layout=old_layout)
        for folder, data in files
    ]


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def workers_for(count: int) -> int:
    """How many worker processes to parse ``count`` files with; below 2, parse in process.

    Workers are forked (see :func:`_context`), which only Linux does safely: elsewhere the
    files are parsed in process."""
    if count < POOL_MINIMUM or not sys.platform.startswith("linux"):
        return 1
    return min(available_cores(), MAX_WORKERS)


def parse_case_yamls(
    files: Iterable[tuple[Tag, str, bytes | None, int]], *, workers: int, old_layout: bool = False
) -> Generator[tuple[Tag, Parsed | None], None, None]:
    """``(tag, parsed)`` for each ``(tag, folder, case.yaml bytes, bytes the tag holds)``, in
    the order given (bytes of None, e.g. a file whose document is cached, give None); with
    ``workers`` of 2 or more, parsed by that many worker processes (see the module
    docstring). Nothing is read from ``files`` beyond what the window holds. ``old_layout``
    as for :func:`parse_case_yaml`."""
    if workers < 2:
        for tag, folder, data, _ in files:
            yield (
                tag,
                None if data is None else parse_case_yaml(folder, data, old_layout=old_layout),
            )
        return
    # Imported here: every reading command imports this module, few start a pool (60 ms).
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Forked: a worker starts with this process's modules imported (no second interpreter
    # start, no import of the CLI again). The pool forks all its workers before it starts its
    # own threads, and a worker ends without running this process's finalisers (the parse
    # cache's SQLite connection is left to this process).
    try:
        pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_watch_parent,
            initargs=(os.getpid(),),
        )
    except (OSError, NotImplementedError, ValueError):
        # No process pool here (no shared semaphores, e.g. some sandboxes): one process.
        yield from parse_case_yamls(files, workers=1, old_layout=old_layout)
        return
    in_flight: deque[tuple[list[Tag], Future[list[Parsed | None]]]] = deque()
    try:
        for tags, chunk in _chunks(files):
            in_flight.append((tags, pool.submit(_parse_chunk, chunk, old_layout)))
            while len(in_flight) > workers * AHEAD:
                yield from _results(*in_flight.popleft())
        while in_flight:
            yield from _results(*in_flight.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _watch_parent(parent: int) -> None:
    # A worker waits for tasks on a pipe it holds open itself, so it would wait forever were
    # this process killed (SIGKILL, or SIGTERM, which runs no clean-up): it ends itself once
    # its parent is gone.
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _chunks(
    files: Iterable[tuple[Tag, str, bytes | None, int]],
) -> Iterator[tuple[list[Tag], list[tuple[str, bytes | None]]]]:
    tags: list[Tag] = []
    chunk: list[tuple[str, bytes | None]] = []
    held = 0
    for tag, folder, data, beside in files:
        tags.append(tag)
        chunk.append((folder, data))
        held += len(data or b"") + beside
        if len(chunk) >= CHUNK_FILES or held >= CHUNK_BYTES:
            yield tags, chunk
            tags, chunk, held = [], [], 0
    if chunk:
        yield tags, chunk


def _results(
    tags: list[Tag], future: Future[list[Parsed | None]]
) -> Iterator[tuple[Tag, Parsed | None]]:
    from concurrent.futures.process import BrokenProcessPool

    try:
        parsed = future.result()
    except BrokenProcessPool as exc:
        raise StoreError(
            f"a worker process parsing case files stopped ({exc}); nothing was changed",
            hint="run the command again; if it keeps failing, the machine may be short of memory",
        ) from exc
    return zip(tags, parsed, strict=True)
