"""Helper process for tests/test_store.py: append lines to a file of a cases repo via update().

usage: store_worker.py LOCATION NAME RELPATH COUNT
  COUNT updates (0 = forever), each appending "NAME-<i>" to RELPATH; after each committed
  update prints "done NAME-<i>" (flushed), so a test that kills the process knows which lines
  must be in the repository.
  With STORE_WORKER_DIE_AFTER=N in the environment the process SIGKILLs itself right after its
  N-th git command after compute first ran (commands run to completion), to crash
  deterministically between any two steps of an update.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from securecase.storage.git import Git, GitResult
from securecase.storage.repos import open_store
from securecase.storage.store import Change, Plan, Snapshot

COUNTING = [False]  # set once compute runs: from there on every step may publish something


def die_after(n: int) -> None:
    original = Git.run
    calls = [0]

    def run(self: Git, args: Sequence[str], **kwargs: Any) -> GitResult:
        result = original(self, args, **kwargs)
        calls[0] += COUNTING[0]
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    Git.run = run  # type: ignore[method-assign]


def main() -> None:
    location, name, relpath, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    folder = os.path.dirname(relpath)
    if os.environ.get("STORE_WORKER_DIE_AFTER"):
        die_after(int(os.environ["STORE_WORKER_DIE_AFTER"]))
    i = 0
    while count == 0 or i < count:
        line = f"{name}-{i}"

        def compute(snap: Snapshot, line: str = line) -> Plan[None]:
            COUNTING[0] = True
            old = snap.read(relpath) or b""
            data = old + line.encode() + b"\n"
            message = f"append {line}\n\nSecurecase-Case: {relpath}\n"
            return Plan(Change({relpath: data}, message=message), None)

        with open_store(location, paths=[folder], timeout=90) as store:
            store.update(compute)
        print(f"done {line}", flush=True)
        i += 1


if __name__ == "__main__":
    main()
