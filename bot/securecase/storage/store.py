"""The cases repository: read a consistent snapshot, commit one change, survive concurrency.

``open_store(location)`` gives a :class:`CasesStore` for a local work tree (committed in place
under a lock) or a remote (a shallow, partial, temporary clone; pushed without force).
``store.update(compute)`` hands ``compute`` a :class:`Snapshot` of the current head and commits
the :class:`Change` it plans as exactly one commit; when the remote moved meanwhile, ``compute``
runs again on the new head. Commits are built with plumbing (trees computed from the parent's
in ``gittree``, or a private index), so the shared ``.git/index`` and the work tree are never
needed to commit (see ``store_local`` for how the
work tree is kept in sync).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Generic, Protocol, TypeVar, cast

from securecase.errors import StoreError
from securecase.storage.git import DEFAULT_IDENTITY, Git, GitIdentity, GitResult
from securecase.storage.gittree import TreeUnavailable, new_trees, object_id

__all__ = [
    "DEFAULT_IDENTITY",
    "CasesStore",
    "ChainCommitted",
    "ChainPlan",
    "Change",
    "Committed",
    "GitIdentity",
    "Plan",
    "Snapshot",
    "validate_relpath",
]

T = TypeVar("T")

BACKOFF_BASE = 0.1
BACKOFF_FACTOR = 2.0
BACKOFF_CAP = 3.0
#: Length of an object id in hex, by the repository's object format.
HEX_LENGTHS = {"sha1": 40, "sha256": 64}
EMPTY_TREE = {
    40: "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
    64: "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321",
}
_HEADER = re.compile(r"^([0-9a-f]{40,64}) (blob|tree|commit|tag) (\d+)$")
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class Snapshot(Protocol):
    """A read-only view of the cases repo at one commit."""

    head: str | None

    def read(self, relpath: str) -> bytes | None:
        """File content at head, None if absent."""
        ...

    def blob_id(self, relpath: str) -> str | None:
        """Git blob id of the file at head, None if absent."""
        ...

    def list_files(self, prefix: str) -> list[str]:
        """Relpaths of the files under ``prefix`` (a folder or a file) at head, sorted."""
        ...

    def tree_id(self) -> str | None:
        """The root tree id of head, None when there is no head yet."""
        ...

    def tree(self, oid: str) -> bytes | None:
        """The content of tree object ``oid``, None when it is not here."""
        ...


@dataclass(frozen=True)
class Change:
    """The files one commit writes and removes; ``message`` is the full commit message."""

    files: Mapping[str, bytes]
    delete: tuple[str, ...] = ()  # files, or folders removed with everything under them
    message: str = ""


@dataclass(frozen=True)
class Plan(Generic[T]):
    """What ``compute`` decided: a change (None = nothing to commit) and its own result."""

    change: Change | None
    result: T


@dataclass(frozen=True)
class Committed(Generic[T]):
    """Outcome of :meth:`CasesStore.update`."""

    commit: str | None
    head: str | None
    attempts: int
    result: T


def validate_relpath(relpath: str) -> str:
    """Return ``relpath`` if it is a safe path inside the repo; raise ValueError otherwise."""
    if not isinstance(relpath, str) or not relpath:
        raise ValueError(f"invalid repository path {relpath!r}: empty or not a string")
    if relpath.startswith("/") or any(c == "\\" or ord(c) < 32 or c == "\x7f" for c in relpath):
        raise ValueError(f"invalid repository path {relpath!r}: absolute or bad character")
    for part in relpath.split("/"):
        if part in ("", ".", "..") or part.lower() == ".git":
            raise ValueError(f"invalid repository path {relpath!r}: bad segment {part!r}")
    return relpath


class _CatFile:
    """One long-running ``git cat-file --batch-command`` reading blobs for all snapshots."""

    def __init__(self, git: Git) -> None:
        self._git = git
        self._proc: subprocess.Popen[bytes] | None = None
        self._errors: IO[bytes] | None = None

    def contents(self, spec: str) -> tuple[str, bytes] | None:
        """(object type, content) of ``spec``, None when it names no object."""
        found = self._ask("contents", spec)
        return (found[1], found[2]) if found is not None else None

    def info(self, spec: str) -> tuple[str, str] | None:
        """(object id, object type) of ``spec`` without reading the object's content."""
        found = self._ask("info", spec)
        return (found[0], found[1]) if found is not None else None

    def _ask(self, command: str, spec: str) -> tuple[str, str, bytes] | None:
        if self._proc is None or self._proc.poll() is not None:
            self.close()
            self._errors = tempfile.TemporaryFile()
            self._proc = self._git.popen(["cat-file", "--batch-command"], stderr=self._errors)
        stdin, stdout = cast(IO[bytes], self._proc.stdin), cast(IO[bytes], self._proc.stdout)
        try:
            stdin.write(f"{command} ".encode() + spec.encode("utf-8", "surrogateescape") + b"\n")
            stdin.flush()
            header = stdout.readline().decode("utf-8", "surrogateescape").rstrip("\n")
            match = _HEADER.match(header)
            if not match:
                if header.endswith((" missing", " ambiguous")):
                    return None
                raise OSError("no answer")
            data = b""
            if command == "contents":
                data = stdout.read(int(match.group(3)))
                stdout.read(1)
        except OSError as exc:
            raise StoreError(f"git cat-file failed reading {spec}: {self._stderr()}") from exc
        return match.group(1), match.group(2), data

    def _stderr(self) -> str:
        if self._errors is None:
            return ""
        self._errors.seek(0)
        return self._git.redact(self._errors.read().decode("utf-8", "replace").strip())

    def close(self) -> None:
        if self._proc is not None:
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream is not None:
                    stream.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._errors is not None:
            self._errors.close()
            self._errors = None


class GitSnapshot:
    """:class:`Snapshot` of a commit in a git repository (objects read on demand)."""

    def __init__(self, git: Git, catfile: _CatFile, head: str | None) -> None:
        self.head = head
        self._git = git
        self._catfile = catfile

    def read(self, relpath: str) -> bytes | None:
        """File content at head, None if absent (or a folder)."""
        validate_relpath(relpath)
        if self.head is None:
            return None
        found = self._catfile.contents(f"{self.head}:{relpath}")
        return found[1] if found is not None and found[0] == "blob" else None

    def blob_id(self, relpath: str) -> str | None:
        """Git blob id at head, None if absent (reads trees only, never fetches the blob)."""
        validate_relpath(relpath)
        if self.head is None:
            return None
        out = self._git.run(["ls-tree", "-z", "--full-tree", self.head, "--", relpath]).stdout
        for entry in out.split(b"\0"):
            meta, _, name = entry.partition(b"\t")
            if name.decode("utf-8", "surrogateescape") == relpath and meta.split()[1] == b"blob":
                return meta.split()[2].decode()
        return None

    def tree(self, oid: str) -> bytes | None:
        """The content of tree object ``oid``, None when it is not here."""
        found = self._catfile.contents(oid)
        return found[1] if found is not None and found[0] == "tree" else None

    def tree_id(self) -> str | None:
        """The root tree of head (None when there is no head yet)."""
        if self.head is None:
            return None
        found = self._catfile.info(f"{self.head}^{{tree}}")
        return found[0] if found is not None else None

    def list_files(self, prefix: str) -> list[str]:
        """Files under ``prefix`` (``""`` = whole tree; a file path lists itself), sorted."""
        prefix = prefix.rstrip("/")
        spec = ["--", validate_relpath(prefix)] if prefix else []
        if self.head is None:
            return []
        out = self._git.run(["ls-tree", "-r", "-z", "--name-only", "--full-tree", self.head, *spec])
        return sorted(p.decode("utf-8", "surrogateescape") for p in out.stdout.split(b"\0") if p)


@dataclass(frozen=True)
class Built:
    """A commit made by :func:`build_commit` (not yet on any branch)."""

    commit: str
    files: Mapping[str, bytes]  # relpath -> content written
    blobs: Mapping[str, str]  # relpath -> its blob id
    removed: tuple[str, ...]  # files removed
    message: str

    @property
    def message_subject(self) -> str:
        """First line of the commit message."""
        return self.message.split("\n", 1)[0]


def touched_paths(snap: Snapshot, change: Change) -> tuple[dict[str, bytes], tuple[str, ...]]:
    """Validated files to write and the existing files to remove (folders expanded)."""
    files = {}
    for path, data in change.files.items():
        if not isinstance(data, bytes):
            raise ValueError(f"content of {path!r} must be bytes")
        files[validate_relpath(path)] = data
    removed: set[str] = set()
    for path in change.delete:
        if validate_relpath(path) in files:
            raise ValueError(f"{path!r} is both written and deleted")
        removed.update(p for p in snap.list_files(path) if p not in files)
    if "\0" in change.message:
        raise ValueError("commit message contains NUL")
    return files, tuple(sorted(removed))


def build_commit(
    git: Git,
    tmpdir: str,
    snap: Snapshot,
    change: Change,
    known_blob: Callable[[bytes], str | None] | None = None,
    hex_len: int | None = None,
) -> Built | None:
    """Write blobs, trees and commit for ``change`` on top of ``snap.head``.

    ``known_blob`` gives the id of content already written (see :class:`BlobsAhead`);
    ``hex_len`` the length of the repository's object ids, which a repository without commits
    cannot tell (unknown: its first commit is built through an index). Returns None when the
    resulting tree equals the current one. Nothing outside the object database is modified,
    so an interruption at any point leaves at most unreachable objects.
    """
    files, removed = touched_paths(snap, change)
    blobs: dict[str, str] = {}
    for path, data in files.items():
        found = known_blob(data) if known_blob is not None else None
        if found is not None:
            blobs[path] = found
    unknown = {path: files[path] for path in files if path not in blobs}
    writing = _ObjectWrite(git, tmpdir, "blob", unknown.values())
    tree = None
    try:
        old_tree = snap.tree_id()
        base = old_tree if old_tree is not None else EMPTY_TREE.get(hex_len or 0)
        if base is not None:
            # The trees can be computed and written while git writes the blobs: their ids are
            # known up front, and git checks them once it is done.
            expected = [object_id(b"blob", data, len(base)) for data in unknown.values()]
            blobs.update(zip(unknown, expected, strict=True))
            try:
                root, trees = new_trees(base, {**dict.fromkeys(removed), **blobs}, snap.tree)
            except TreeUnavailable:
                pass  # not all of it is here (a partial clone): let git's index do it
            else:
                contents = [content for _, content in trees]
                if _ObjectWrite(git, tmpdir, "tree", contents).ids() != [o for o, _ in trees]:
                    raise StoreError("git stored a tree under another id than computed")
                tree = root or EMPTY_TREE[len(base)]
            if writing.ids() != expected:
                raise StoreError("git stored a file under another id than computed")
        else:
            blobs.update(zip(unknown, writing.ids(), strict=True))
    finally:
        writing.close()
    blobs = {path: blobs[path] for path in files}  # in the order of the change
    if tree is None:
        tree = _tree_through_index(git, tmpdir, snap, blobs, removed)
    if tree == (old_tree or EMPTY_TREE.get(len(tree))):
        return None
    message = git.redact(change.message)
    if message and not message.endswith("\n"):
        message += "\n"
    parents = ["-p", snap.head] if snap.head else []
    commit = git.run(
        ["commit-tree", "--no-gpg-sign", tree, *parents, "-F", "-"],
        input=message.encode("utf-8"),
    ).text
    return Built(commit, files, blobs, removed, message)


class _ObjectWrite:
    """``contents`` being written as objects of ``kind`` by one ``git hash-object``."""

    def __init__(self, git: Git, tmpdir: str, kind: str, contents: Iterable[bytes]) -> None:
        self._paths: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._args = ["hash-object", "-w", "-t", kind, "--no-filters", "--stdin-paths"]
        self._git = git
        # Files, not pipes, for the list in and the messages out: neither can fill up and
        # stall git while this process is not reading yet.
        self._stderr = tempfile.TemporaryFile(dir=tmpdir)
        try:
            for data in contents:
                fd, path = tempfile.mkstemp(prefix=f"{kind}-", dir=tmpdir)
                self._paths.append(path)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
            if self._paths:
                with tempfile.TemporaryFile(dir=tmpdir) as listing:
                    listing.write("".join(f"{p}\n" for p in self._paths).encode())
                    listing.seek(0)
                    self._proc = git.popen(
                        self._args, stderr=self._stderr, stdin=listing, inherit=True
                    )
        except BaseException:
            self.close()
            raise

    def ids(self) -> list[str]:
        """The ids git gave the contents, in order (raises StoreError when git failed)."""
        if self._proc is None:
            return []
        try:
            out = cast(IO[bytes], self._proc.stdout).read()
            if self._proc.wait() != 0:
                self._stderr.seek(0)
                err = self._git.redact(self._stderr.read().decode("utf-8", "replace"))
                raise self._git.error(self._args, GitResult(self._proc.returncode, out, err))
        finally:
            self.close()
        return out.decode().split()

    def close(self) -> None:
        """Wait for git and remove the temporary files (again: nothing to do)."""
        if self._proc is not None:
            # Unread ids could fill the pipe and block git forever: closing it ends git early
            # (each object it wrote is complete).
            cast(IO[bytes], self._proc.stdout).close()
            self._proc.wait()
            self._proc = None
        self._stderr.close()
        for path in self._paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._paths = []


def _tree_through_index(
    git: Git, tmpdir: str, snap: Snapshot, blobs: Mapping[str, str], removed: Sequence[str]
) -> str:
    """The new root tree, built by git on a private index (first commit, partial clones)."""
    fd, index = tempfile.mkstemp(prefix="index-", dir=tmpdir)
    os.close(fd)
    os.unlink(index)  # git wants to create it; an empty file is not a valid index
    env = {"GIT_INDEX_FILE": index}
    try:
        if snap.head is not None:
            git.run(["read-tree", snap.head], env=env)
        info = [f"0 {'0' * len(snap.head or '')}\t{p}\0" for p in removed]  # removed: head set
        info += [f"100644 {oid}\t{p}\0" for p, oid in blobs.items()]
        if info:
            git.run(["update-index", "-z", "--index-info"], input="".join(info).encode(), env=env)
        return git.run(["write-tree", "--missing-ok"], env=env).text
    finally:
        for path in (index, f"{index}.lock"):
            if os.path.exists(path):
                os.unlink(path)


class BlobsAhead:
    """Contents being written as blobs in the background, one ``git hash-object`` each.

    Hashing and compressing a large raw report takes tens of milliseconds; started while the
    case is read, merged and dumped, it runs on another core and the commit does not wait.
    Only a head start: content whose writing failed is written again by the commit.
    """

    def __init__(self, git: Git, contents: Sequence[bytes]) -> None:
        self._contents = list(contents)
        self._ids: list[str | None] | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._feeders: list[threading.Thread] = []
        try:
            with open(os.devnull, "wb") as quiet:
                for data in self._contents:
                    args = ["hash-object", "-w", "--no-filters", "--stdin"]
                    proc = git.popen(args, stderr=quiet)
                    self._procs.append(proc)
                    # Megabytes through a pipe take milliseconds of waiting on git to read
                    # them; a thread waits instead (writes release the GIL).
                    feeder = threading.Thread(target=_feed, args=(proc, data), daemon=True)
                    feeder.start()
                    self._feeders.append(feeder)
        except BaseException:
            self.close(wait=False)
            raise

    def blob_id(self, data: bytes) -> str | None:
        """The blob id of ``data`` if it is one of the contents written ahead."""
        for n, known in enumerate(self._contents):
            if known is data or known == data:
                return self._results()[n]
        return None

    def _results(self) -> list[str | None]:
        if self._ids is None:
            self._ids = []
            for feeder in self._feeders:
                feeder.join()
            for proc in self._procs:
                try:
                    out = cast(IO[bytes], proc.stdout).read()
                    proc.wait(timeout=600)
                except (OSError, subprocess.TimeoutExpired):
                    out = b""
                text = out.decode("ascii", "replace").strip()
                ok = proc.returncode == 0 and _OBJECT_ID.fullmatch(text) is not None
                self._ids.append(text if ok else None)
        return self._ids

    def close(self, *, wait: bool = True) -> None:
        """Let running writes finish (killing one would leave a half-written temporary object
        file behind), or stop them when ``wait`` is false (the run is failing anyway)."""
        for proc in self._procs:
            if not wait and proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        for feeder in self._feeders:
            feeder.join()  # git is gone: a write still pending fails at once


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    """Write ``data`` to git's stdin and close it; a git that died early just ends the feed."""
    stdin = cast(IO[bytes], proc.stdin)
    try:
        stdin.write(data)
    except OSError:
        pass  # blob_id() finds no id and the commit writes the content itself
    finally:
        with contextlib.suppress(OSError):
            stdin.close()


class Backend(Protocol):
    """What differs between a local work tree and a remote (see store_local, store_remote)."""

    git: Git
    catfile: _CatFile
    cache_dir: str | None  # where parsed case files may be kept between runs (None: nowhere)
    hex_len: int  # object ids in hex: 40 (SHA-1) or 64 (SHA-256)

    def current_head(self) -> str | None: ...
    def begin(self, timeout: float) -> None: ...
    def end(self) -> None: ...
    def prepare(self, snap: Snapshot, change: Change) -> None: ...
    def build_dir(self) -> str: ...
    def publish(self, old: str | None, built: Built) -> bool: ...
    def after_publish(self, old: str | None, built: Built) -> None: ...
    def refresh(self) -> None: ...
    def close(self) -> None: ...
    def fetch_history(self) -> None: ...
    def fetch_blobs(self, blob_ids: Sequence[str]) -> None: ...


class CasesStore:
    """The cases repository, opened by :func:`open_store`; a context manager."""

    def __init__(
        self,
        backend: Backend,
        *,
        timeout: float,
        rng: random.Random,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
    ) -> None:
        self._backend = backend
        self._timeout = timeout
        self._rng = rng
        self._sleep = sleep
        self._monotonic = monotonic
        self._closed = False
        self._ahead: BlobsAhead | None = None

    @property
    def workdir(self) -> str:
        """Directory git runs in (the work tree, or the temporary clone for a remote)."""
        return self._backend.git.cwd

    @property
    def cache_dir(self) -> str | None:
        """A private folder that outlives this run (see :mod:`securecase.storage.casecache`), if any."""
        return self._backend.cache_dir

    def __enter__(self) -> CasesStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(failing=exc is not None)

    def close(self, *, failing: bool = False) -> None:
        """Stop helper processes and remove temporary clones."""
        if not self._closed:
            self._closed = True
            if self._ahead is not None:
                self._ahead.close(wait=not failing)
            self._backend.catfile.close()
            self._backend.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the cases store is already closed")

    def write_ahead(self, contents: Sequence[bytes]) -> None:
        """Start writing ``contents`` (large files a coming change will hold) as blobs now, in
        the background; :meth:`update` then uses them instead of hashing again."""
        self._check_open()
        if self._ahead is not None:
            self._ahead.close()
        self._ahead = BlobsAhead(self._backend.git, contents)

    def snapshot(self) -> Snapshot:
        """The committed state now (local: the checked-out branch; remote: the fetched tip)."""
        self._check_open()
        return GitSnapshot(self._backend.git, self._backend.catfile, self._backend.current_head())

    def snapshot_at(self, ref: str) -> Snapshot | None:
        """The committed state at ``ref``, None if unknown.

        ``ref`` is a branch, tag or sha the repository has, or a branch of its ``origin``
        (a CI checkout often has only ``origin/main``; a remote's clone has its default branch).
        """
        self._check_open()
        if ref.startswith("-") or any(ord(c) < 32 for c in ref):
            return None  # never an option to git
        for candidate in (ref, f"refs/remotes/origin/{ref}"):
            found = self._backend.git.run(
                ["rev-parse", "-q", "--verify", "--end-of-options", f"{candidate}^{{commit}}"],
                check=False,
            )
            if found.returncode == 0:
                return GitSnapshot(self._backend.git, self._backend.catfile, found.text)
        return None

    def blob_ids(self, head: str | None, prefix: str) -> dict[str, str]:
        """Path → blob id of every file under ``prefix`` at commit ``head`` (one ``ls-tree``).

        Reads trees only, so a partial clone fetches no file content for it; pair it with
        :meth:`read_blobs` to read a chosen subset in one batch.
        """
        self._check_open()
        if head is None:
            return {}
        prefix = validate_relpath(prefix.rstrip("/"))
        out = self._backend.git.run(["ls-tree", "-r", "-z", "--full-tree", head, "--", prefix])
        found = {}
        for entry in out.stdout.split(b"\0"):
            meta, _, name = entry.partition(b"\t")
            parts = meta.split()
            if len(parts) == 3 and parts[1] == b"blob":
                found[name.decode("utf-8", "surrogateescape")] = parts[2].decode()
        return found

    def log(self, args: Sequence[str]) -> bytes:
        """Output of ``git log ARGS`` over the full history of the snapshot's branch.

        A remote clone starts at depth 1: its commit history (trees and commits, no blobs) is
        fetched first, in one call.
        """
        self._check_open()
        self._backend.fetch_history()
        return self._backend.git.run(["log", *args]).stdout

    def read_blobs(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        """The contents of these blobs by id (a remote fetches the missing ones in one call)."""
        self._check_open()
        wanted = sorted(set(blob_ids))
        if wanted:
            self._backend.fetch_blobs(wanted)
        return self._objects(wanted, "blob")

    def read_commits(self, commit_ids: Sequence[str]) -> dict[str, bytes]:
        """The raw commit objects by id (after :meth:`log`, a remote clone has them all)."""
        self._check_open()
        return self._objects(sorted(set(commit_ids)), "commit")

    def _objects(self, ids: Sequence[str], kind: str) -> dict[str, bytes]:
        found = {}
        for oid in ids:
            got = self._backend.catfile.contents(oid)
            if got is None or got[0] != kind:
                raise StoreError(f"the cases repo has no {kind} {oid}")
            found[oid] = got[1]
        return found

    def update_chain(self, compute: Callable[[Snapshot], ChainPlan[T]]) -> ChainCommitted[T]:
        """Commit each change ``compute`` plans as its own commit, in order, published at once.

        The same retry as :meth:`update`: when the head moved (a push was rejected), ``compute``
        runs again on the new head and the whole chain is rebuilt. Each change must touch paths
        no other change of the chain touches (one case folder per commit).
        """
        return _update_chain(self, compute)

    def update(self, compute: Callable[[Snapshot], Plan[T]]) -> Committed[T]:
        """Commit what ``compute`` plans as one commit; recompute on a newer head, then retry.

        ``compute`` may run several times and must derive everything from the snapshot it gets.
        Raises StoreError when the change cannot be recorded within the store's timeout.
        """
        self._check_open()
        start = self._monotonic()
        backend = self._backend
        backend.begin(self._timeout)
        try:
            attempt = 0
            while True:
                attempt += 1
                snap = self.snapshot()
                plan = compute(snap)
                if plan.change is None:
                    return Committed(None, snap.head, attempt, plan.result)
                backend.prepare(snap, plan.change)
                known = self._ahead.blob_id if self._ahead is not None else None
                built = build_commit(
                    backend.git, backend.build_dir(), snap, plan.change, known, backend.hex_len
                )
                if built is None:
                    return Committed(None, snap.head, attempt, plan.result)
                if backend.publish(snap.head, built):
                    backend.after_publish(snap.head, built)
                    return Committed(built.commit, built.commit, attempt, plan.result)
                elapsed = self._monotonic() - start
                if elapsed >= self._timeout:
                    raise StoreError(
                        f"gave up recording the change after {attempt} attempts in "
                        f"{elapsed:.1f}s: the cases repo kept moving (or stayed locked)",
                        hint="retry later, or raise the store timeout",
                    )
                ceiling = min(BACKOFF_CAP, BACKOFF_BASE * BACKOFF_FACTOR ** (attempt - 1))
                self._sleep(min(self._rng.uniform(0, ceiling), self._timeout - elapsed))
                backend.refresh()
        finally:
            backend.end()


# -- several commits, one publish (the sweep) --------------------------------------------------


@dataclass(frozen=True)
class ChainPlan(Generic[T]):
    """What a chain ``compute`` decided: one change per commit (none: nothing to commit)."""

    changes: tuple[Change, ...]
    result: T


@dataclass(frozen=True)
class ChainCommitted(Generic[T]):
    """Outcome of :meth:`CasesStore.update_chain`: the commits made, oldest first."""

    commits: tuple[str, ...]
    head: str | None
    attempts: int
    result: T


def _update_chain(
    store: CasesStore, compute: Callable[[Snapshot], ChainPlan[T]]
) -> ChainCommitted[T]:
    """See :meth:`CasesStore.update_chain`."""
    store._check_open()
    start = store._monotonic()
    backend = store._backend
    backend.begin(store._timeout)
    try:
        attempt = 0
        while True:
            attempt += 1
            snap = store.snapshot()
            plan = compute(snap)
            chain: list[Built] = []
            tip: Snapshot = snap
            if plan.changes:
                # Each change touches its own paths: one check of them all against the head read.
                backend.prepare(snap, _union(plan.changes))
            for change in plan.changes:
                built = build_commit(
                    backend.git, backend.build_dir(), tip, change, None, backend.hex_len
                )
                if built is not None:
                    chain.append(built)
                    tip = GitSnapshot(backend.git, backend.catfile, built.commit)
            if not chain:
                return ChainCommitted((), snap.head, attempt, plan.result)
            if backend.publish(snap.head, chain[-1]):
                backend.after_publish(snap.head, _squashed(chain))
                commits = tuple(b.commit for b in chain)
                return ChainCommitted(commits, chain[-1].commit, attempt, plan.result)
            elapsed = store._monotonic() - start
            if elapsed >= store._timeout:
                raise StoreError(
                    f"gave up recording {len(chain)} commit(s) after {attempt} attempts in "
                    f"{elapsed:.1f}s: the cases repo kept moving (or stayed locked)",
                    hint="retry later, or raise the store timeout",
                )
            ceiling = min(BACKOFF_CAP, BACKOFF_BASE * BACKOFF_FACTOR ** (attempt - 1))
            store._sleep(min(store._rng.uniform(0, ceiling), store._timeout - elapsed))
            backend.refresh()
    finally:
        backend.end()


def _union(changes: Sequence[Change]) -> Change:
    """The files all ``changes`` write and delete, as one change (for checking them once)."""
    files: dict[str, bytes] = {}
    delete: list[str] = []
    for change in changes:
        files.update(change.files)
        delete.extend(change.delete)
    return Change(files=files, delete=tuple(delete))


def _squashed(chain: Sequence[Built]) -> Built:
    """The chain's effect as one :class:`Built` at its last commit (for syncing a work tree)."""
    files: dict[str, bytes] = {}
    blobs: dict[str, str] = {}
    removed: set[str] = set()
    for built in chain:
        files.update(built.files)
        blobs.update(built.blobs)
        removed.difference_update(built.files)
        removed.update(built.removed)
        for path in built.removed:
            files.pop(path, None)
            blobs.pop(path, None)
    last = chain[-1]
    return Built(last.commit, files, blobs, tuple(sorted(removed)), last.message)
