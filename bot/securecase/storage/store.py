"""The cases repository: read a consistent snapshot, commit one change, survive concurrency.

``open_store(location)`` gives a :class:`CasesStore` for a local work tree (committed in place
under a lock) or a remote (a shallow, partial, temporary clone; pushed without force).
``store.update(compute)`` hands ``compute`` a :class:`Snapshot` of the current head and commits
the :class:`Change` it plans as exactly one commit; when the remote moved meanwhile, ``compute``
runs again on the new head. Commits are built with git's plumbing (``hash-object``,
``mktree``, ``commit-tree``) from objects alone, so the shared ``.git/index`` and the work tree
are never needed to commit (see :mod:`securecase.storage.local` for how the work tree is kept
in sync).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import re
import subprocess
import tempfile
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import IO, Any, Generic, Protocol, TypeVar, cast

from securecase.errors import CasesRepoBusy, StoreError
from securecase.storage.git import DEFAULT_IDENTITY, Git, GitIdentity
from securecase.storage.secrets import masked_file, masked_text

__all__ = [
    "DEFAULT_IDENTITY",
    "CasesStore",
    "BatchCommitted",
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
R = TypeVar("R")

BACKOFF_BASE = 0.1
BACKOFF_FACTOR = 2.0
# A writer that lost several times sleeps no longer than this, so fresh writers do not keep
# passing it (3 s made the slowest of 16 concurrent ingests about 4 s slower: benchmarks/).
BACKOFF_CAP = 1.0
_HEADER = re.compile(r"^([0-9a-f]{40,64}) (blob|tree|commit|tag) (\d+)$")
_COMMIT_ID = _OBJECT_ID = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class Snapshot(Protocol):
    """A read-only view of the cases repo at one commit."""

    @property
    def head(self) -> str | None:
        """The commit viewed (None: the branch has none yet)."""
        ...

    def read(self, relpath: str) -> bytes | None:
        """File content at head, None if absent."""
        ...

    def blob_id(self, relpath: str) -> str | None:
        """Git blob id of the file at head, None if absent."""
        ...

    def list_files(self, prefix: str) -> list[str]:
        """Relpaths of the files under ``prefix`` (a folder or a file) at head, sorted."""
        ...

    def is_folder(self, relpath: str) -> bool:
        """Whether ``relpath`` is a folder at head."""
        ...

    def entries(self, relpath: str) -> int:
        """How many files and folders the folder ``relpath`` holds directly at head."""
        ...


@dataclass(frozen=True)
class Change:
    """The files one commit writes and removes; ``message`` is the full commit message."""

    files: Mapping[str, bytes]
    delete: tuple[str, ...] = ()  # files, or folders removed with everything under them
    message: str = ""
    #: The commit's author date (ISO 8601), so history tells when a scan was recorded by the
    #: run's own clock (replays, fixed clocks); None: now. The committer date is always now.
    authored_at: str | None = None


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

    def is_folder(self, relpath: str) -> bool:
        """Whether ``relpath`` is a folder at head (asked of the running ``cat-file``)."""
        validate_relpath(relpath)
        if self.head is None:
            return False
        found = self._catfile.info(f"{self.head}:{relpath}")
        return found is not None and found[1] == "tree"

    def folder_id(self, relpath: str) -> str | None:
        """The tree id of the folder ``relpath`` at head, None when it is not a folder there
        (asked of the running ``cat-file``: no process started, no blob read)."""
        validate_relpath(relpath)
        if self.head is None:
            return None
        found = self._catfile.info(f"{self.head}:{relpath}")
        return found[0] if found is not None and found[1] == "tree" else None

    def entries(self, relpath: str) -> int:
        """How many files and folders the folder ``relpath`` holds directly at head (0 when
        it is absent); one ``ls-tree`` of that tree, no blob read."""
        validate_relpath(relpath)
        if self.head is None:
            return 0
        out = self._git.run(["ls-tree", "-z", "--name-only", self.head, "--", relpath + "/"])
        return sum(1 for name in out.stdout.split(b"\0") if name)

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
        if prefix:
            # Most prefixes name one file, or nothing: the folder above tells, read through
            # the running cat-file; only a folder is listed by `ls-tree`.
            parent, _, name = prefix.rpartition("/")
            above = self._catfile.info(
                f"{self.head}:{parent}" if parent else f"{self.head}^{{tree}}"
            )
            if above is None or above[1] != "tree":
                return []
            entry = _tree_listing(self._catfile, above[0]).get(name)
            if entry is None:
                return []
            if entry[1] != "tree":
                return [prefix]
        out = self._git.run(["ls-tree", "-r", "-z", "--name-only", "--full-tree", self.head, *spec])
        return sorted(p.decode("utf-8", "surrogateescape") for p in out.stdout.split(b"\0") if p)


class RecordingSnapshot:
    """A :class:`Snapshot` that notes every answer it gave, so that a later snapshot can be
    asked whether the same questions get the same answers there (:meth:`same_answers`).

    Reading ``head`` (a plan that names its parent) makes no later snapshot the same.
    """

    def __init__(self, inner: GitSnapshot) -> None:
        self._inner = inner
        self._asked: list[tuple[str, str, object]] = []
        self._head_read = False

    @property
    def head(self) -> str | None:
        """The commit read (noted: no other commit answers the same)."""
        self._head_read = True
        return self._inner.head

    def _noted(self, question: str, relpath: str) -> Any:
        answer = getattr(self._inner, question)(relpath)
        self._asked.append((question, relpath, answer))
        return answer

    def read(self, relpath: str) -> bytes | None:
        """File content at head, None if absent."""
        return cast(bytes | None, self._noted("read", relpath))

    def blob_id(self, relpath: str) -> str | None:
        """Git blob id of the file at head, None if absent."""
        return cast(str | None, self._noted("blob_id", relpath))

    def list_files(self, prefix: str) -> list[str]:
        """Relpaths of the files under ``prefix`` at head, sorted."""
        return cast(list[str], self._noted("list_files", prefix))

    def is_folder(self, relpath: str) -> bool:
        """Whether ``relpath`` is a folder at head."""
        return cast(bool, self._noted("is_folder", relpath))

    def entries(self, relpath: str) -> int:
        """How many files and folders the folder ``relpath`` holds directly at head."""
        return cast(int, self._noted("entries", relpath))

    def folder_id(self, relpath: str) -> str | None:
        """The tree id of the folder ``relpath`` at head, None when it is not a folder."""
        return cast(str | None, self._noted("folder_id", relpath))

    def same_answers(self, other: GitSnapshot) -> bool:
        """Whether ``other`` answers every question asked of this snapshot as it did."""
        if self._head_read:
            return False
        return all(
            getattr(other, question)(relpath) == answer for question, relpath, answer in self._asked
        )


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
    for path in files:
        # git's index would silently keep only one of a file and a file inside it
        folder = path.rpartition("/")[0]
        while folder:
            if folder in files:
                raise ValueError(f"{path!r} is inside {folder!r}, which the same change writes")
            folder = folder.rpartition("/")[0]
    removed: set[str] = set()
    for path in change.delete:
        if validate_relpath(path) in files:
            raise ValueError(f"{path!r} is both written and deleted")
        removed.update(p for p in snap.list_files(path) if p not in files)
    if "\0" in change.message:
        raise ValueError("commit message contains NUL")
    return files, tuple(sorted(removed))


def build_commit(
    git: Git, tmpdir: str, snap: GitSnapshot, change: Change, *, written: Built | None = None
) -> Built | None:
    """Write blobs, tree and commit for ``change`` on top of ``snap.head``.

    ``written``: a commit built before in this repository whose files are these (a retry of
    the same change on a newer head): their blobs are there already and are not written again.

    Only the folders on the changed paths are rewritten, each read through the running
    ``cat-file`` and written by one ``git mktree --batch``: every other tree is named by its
    id, so a clone that holds only the trees on those paths (a remote's) needs no other.
    Returns None when the tree would not change.
    Nothing outside the object database is modified, so an interruption at any point leaves
    at most unreachable objects.
    """
    files, removed = touched_paths(snap, change)
    if not files and not removed:
        return None
    if written is not None and written.files == files:
        blobs = dict(written.blobs)
    else:
        with tempfile.TemporaryDirectory(prefix="commit-", dir=tmpdir) as folder:
            blobs = _write_blobs(git, folder, files)
    root = snap.tree_id()
    tree = _write_tree(git, snap._catfile, root, blobs, removed)
    if tree == root:
        return None
    message = git.redact(change.message)
    if message and not message.endswith("\n"):
        message += "\n"
    parents = ["-p", snap.head] if snap.head else []
    commit = git.run(
        ["commit-tree", "--no-gpg-sign", tree, *parents, "-F", "-"],
        input=message.encode("utf-8"),
        env={"GIT_AUTHOR_DATE": change.authored_at} if change.authored_at else None,
    ).text
    return Built(commit, files, blobs, removed, message)


def _write_blobs(git: Git, folder: str, files: Mapping[str, bytes]) -> dict[str, str]:
    """Store ``files`` (path -> content) as blobs; their ids by path.

    One ``git hash-object`` writes them, and a second one beside it the files stored
    compressed (``.gz``: large raw reports), told not to compress them again: zlib over gzip
    data costs about 25 ms per half megabyte on the commit's path, for loose objects a
    sixth smaller until the next repack compresses them anyway.
    """
    paths = {}
    for n, (path, data) in enumerate(files.items()):
        paths[path] = os.path.join(folder, f"blob-{n}")
        with open(paths[path], "wb") as handle:
            handle.write(data)
    packed = [path for path in paths if path.endswith(".gz")]
    plain = [path for path in paths if not path.endswith(".gz")]
    if not (packed and plain):
        return _hash_objects(git, paths, list(paths), compress=not packed)
    # Imported here: only a commit with a large raw report gets this far (and its gzip
    # thread imported it already).
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        beside = pool.submit(_hash_objects, git, paths, packed, compress=False)
        return {**_hash_objects(git, paths, plain, compress=True), **beside.result()}


def _hash_objects(
    git: Git, written: Mapping[str, str], paths: Sequence[str], *, compress: bool
) -> dict[str, str]:
    """The blob ids of ``paths``, their contents stored by one ``git hash-object`` from the
    files ``written`` names."""
    if not paths:
        return {}
    listing = "".join(f"{written[path]}\n" for path in paths).encode()
    config = [] if compress else ["-c", "core.looseCompression=0"]
    args = [*config, "hash-object", "-w", "--no-filters", "--stdin-paths"]
    ids = git.run(args, input=listing).text.split()
    if len(ids) != len(paths):
        raise StoreError(f"git hash-object stored {len(ids)} of {len(paths)} files")
    return dict(zip(paths, ids, strict=True))


_TREE_MODE = b"40000"
_KINDS = {_TREE_MODE: "tree", b"160000": "commit"}


def tree_entries(catfile: _CatFile, tree: str) -> dict[str, tuple[str, str]]:
    """Name -> (object type, id) of each entry of one tree object (one level, not its
    subtrees), read through the running ``cat-file``: the tree alone must be present."""
    return {name: (kind, oid) for name, (_, kind, oid) in _tree_listing(catfile, tree).items()}


def _tree_listing(catfile: _CatFile, tree: str) -> dict[str, tuple[bytes, str, str]]:
    """Name -> (mode, object type, id) of each entry of one tree object."""
    found = catfile.contents(tree)
    if found is None or found[0] != "tree":
        raise StoreError(f"the cases repo has no tree {tree}")
    raw, width, pos = found[1], len(tree) // 2, 0
    entries = {}
    # git's tree format: "<mode> <name>\0<binary object id>", entry after entry
    while pos < len(raw):
        space = raw.index(b" ", pos)
        nul = raw.index(b"\0", space)
        name = raw[space + 1 : nul].decode("utf-8", "surrogateescape")
        mode = raw[pos:space]
        entries[name] = (mode, _KINDS.get(mode, "blob"), raw[nul + 1 : nul + 1 + width].hex())
        pos = nul + 1 + width
    return entries


_Edits = dict[str, "str | None | _Edits"]  # name -> blob id, None (removed), or a folder's edits


def _write_tree(
    git: Git,
    catfile: _CatFile,
    root: str | None,
    blobs: Mapping[str, str],
    removed: Sequence[str],
) -> str:
    """The tree ``root`` with ``blobs`` written and ``removed`` gone, rewriting only the
    folders on their paths.

    As with ``update-index``, a file written where a folder was replaces it, and a folder
    written where a file was replaces the file; a folder left empty goes.
    """
    edits: _Edits = {}
    for path, oid in [*((p, None) for p in removed), *blobs.items()]:
        *folders, name = path.split("/")
        node = edits
        for part in folders:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[name] = oid
    with _TreeWriter(git) as writer:
        return _rewrite(catfile, writer, root, edits) or writer.write([])


def _rewrite(catfile: _CatFile, writer: _TreeWriter, tree: str | None, edits: _Edits) -> str | None:
    """One folder rewritten (None when it ends up empty: git keeps no empty folder)."""
    listing: dict[str, bytes] = {}
    kinds: dict[str, tuple[str, str]] = {}
    if tree is not None:
        for name, (mode, kind, oid) in _tree_listing(catfile, tree).items():
            listing[name] = mode + f" {kind} {oid}\t{name}".encode("utf-8", "surrogateescape")
            kinds[name] = (kind, oid)
    for name, edit in edits.items():
        if isinstance(edit, dict):
            kind, oid = kinds.get(name, ("", ""))
            sub = _rewrite(catfile, writer, oid if kind == "tree" else None, edit)
            if sub is None:
                listing.pop(name, None)
            else:
                listing[name] = f"040000 tree {sub}\t{name}".encode("utf-8", "surrogateescape")
        elif edit is None:
            listing.pop(name, None)
        else:
            listing[name] = f"100644 blob {edit}\t{name}".encode("utf-8", "surrogateescape")
    if not listing:
        return None
    return writer.write(list(listing.values()))


class _TreeWriter:
    """One ``git mktree --batch`` writing every tree of a commit, answering each with its id
    (a folder's id goes into the folder above it, so they are written one by one)."""

    def __init__(self, git: Git) -> None:
        self._git = git
        self._errors = tempfile.TemporaryFile()
        self._proc = git.popen(["mktree", "-z", "--missing", "--batch"], stderr=self._errors)

    def __enter__(self) -> _TreeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()
        self._proc.wait()
        self._errors.close()

    def write(self, entries: Sequence[bytes]) -> str:
        """The id of the tree holding ``entries`` (``ls-tree`` lines), written."""
        stdin, stdout = cast(IO[bytes], self._proc.stdin), cast(IO[bytes], self._proc.stdout)
        try:
            # -z: each entry ends with a NUL, and an empty entry ends the tree.
            stdin.write(b"".join(entry + b"\0" for entry in entries) + b"\0")
            stdin.flush()
            answer = stdout.readline().decode("ascii", "replace").strip()
        except OSError:
            answer = ""
        if not _OBJECT_ID.match(answer):
            self._errors.seek(0)
            said = self._git.redact(self._errors.read().decode("utf-8", "replace").strip())
            raise StoreError(f"git mktree failed: {said or answer or 'no answer'}")
        return answer


def masked_change(change: Change) -> Change:
    """``change`` with secrets masked in every file and in the message (see storage.secrets)."""
    files = {path: masked_file(path, data) for path, data in change.files.items()}
    return replace(change, files=files, message=masked_text(change.message))


class Backend(Protocol):
    """What differs between a local work tree and a remote (see store_local, store_remote)."""

    git: Git
    catfile: _CatFile
    private_dir: str | None  # inside the git dir, outlives the run (None: a temporary clone)

    def current_head(self) -> str | None: ...
    def begin(self, timeout: float) -> None: ...
    def end(self) -> None: ...
    def prepare(self, snap: Snapshot, change: Change) -> None: ...
    def build_dir(self) -> str: ...
    def publish(self, old: str | None, built: Built) -> bool: ...
    def after_publish(self, old: str | None, built: Built) -> None: ...
    def obstacle(self) -> str | None: ...
    def refresh(self) -> None: ...
    def close(self) -> None: ...
    def fetch_history(self, path: str | None = None, since: str | None = None) -> None: ...
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

    @property
    def workdir(self) -> str:
        """Directory git runs in (the work tree, or the temporary clone for a remote)."""
        return self._backend.git.cwd

    @property
    def private_dir(self) -> str | None:
        """A folder of securecase's inside the repository's git dir (never committed, kept
        between runs) for data derived from committed blobs; None for a temporary clone."""
        return self._backend.private_dir

    def __enter__(self) -> CasesStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop helper processes and remove temporary clones."""
        if not self._closed:
            self._closed = True
            self._backend.catfile.close()
            self._backend.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the cases store is already closed")

    def snapshot(self) -> GitSnapshot:
        """The committed state now (local: the checked-out branch; remote: the fetched tip)."""
        self._check_open()
        return GitSnapshot(self._backend.git, self._backend.catfile, self._backend.current_head())

    def snapshot_at(self, ref: str) -> GitSnapshot | None:
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

    def blob_ids(
        self, head: str | None, prefix: str, *, names: Sequence[str] = ()
    ) -> dict[str, str]:
        """Path → blob id of every file under ``prefix`` at commit ``head`` (one ``ls-tree``);
        with ``names``, only the files of these names (e.g. ``case.yaml``).

        Reads trees only, so a partial clone fetches no file content for it; pair it with
        :meth:`read_blobs` to read a chosen subset in one batch.
        """
        self._check_open()
        if head is None:
            return {}
        prefix = validate_relpath(prefix.rstrip("/"))
        wanted = tuple(b"/" + name.encode() for name in names)
        out = self._backend.git.run(["ls-tree", "-r", "-z", "--full-tree", head, "--", prefix])
        found = {}
        for entry in out.stdout.split(b"\0"):
            if wanted and not entry.endswith(wanted):
                continue
            meta, _, name = entry.partition(b"\t")
            parts = meta.split()
            if len(parts) == 3 and parts[1] == b"blob":
                found[name.decode("utf-8", "surrogateescape")] = parts[2].decode()
        return found

    def subfolders(self, head: str | None, prefix: str) -> list[str]:
        """The paths of the folders directly under ``prefix`` at commit ``head`` (trees only)."""
        self._check_open()
        if head is None:
            return []
        prefix = validate_relpath(prefix.rstrip("/"))
        out = self._backend.git.run(
            ["ls-tree", "-d", "-z", "--name-only", "--full-tree", head, "--", prefix + "/"]
        )
        return [name.decode("utf-8", "surrogateescape") for name in out.stdout.split(b"\0") if name]

    def log(
        self, args: Sequence[str], *, path: str | None = None, since: str | None = None
    ) -> bytes:
        """Output of ``git log ARGS`` over the full history of the snapshot's branch.

        A remote clone starts at depth 1: its commit history (trees and commits, no blobs) is
        fetched first, in one call; with ``path`` (the only path ``args`` limits the log to),
        only the commits (committed from ``since``, an ISO date, when given) and the trees
        on the way to ``path``.
        """
        self._check_open()
        self._backend.fetch_history(path, since)
        return self._backend.git.run(["log", *args]).stdout

    def is_ancestor(self, older: str, newer: str) -> bool:
        """True when commit ``newer`` is ``older`` or descends from it; False for an
        ``older`` the repository does not have (a history since rewritten)."""
        self._check_open()
        if older == newer:
            return True
        if not (_COMMIT_ID.match(older) and _COMMIT_ID.match(newer)):
            return False  # never an option or a revision expression to git
        self._backend.fetch_history()
        found = self._backend.git.run(["merge-base", "--is-ancestor", older, newer], check=False)
        return found.returncode == 0

    def changed_files(
        self, commits: Sequence[str], prefix: str
    ) -> dict[str, list[tuple[str | None, str | None, str]]]:
        """The files under ``prefix`` each of ``commits`` changed from its first parent (a root
        commit: every file), as (old blob, new blob, path) with None for a side that has no
        file; a commit that changed none there is absent. One ``git diff-tree --stdin``, trees
        only (a partial clone fetches no file content for it)."""
        self._check_open()
        wanted = [c for c in commits if _COMMIT_ID.match(c)]
        if len(wanted) != len(commits):
            raise StoreError("changed_files takes full commit ids only")
        if not wanted:
            return {}
        prefix = validate_relpath(prefix.rstrip("/"))
        self._backend.fetch_history()
        args = ["diff-tree", "--stdin", "-z", "-r", "--raw", "--no-abbrev", "--no-renames"]
        out = self._backend.git.run(
            [*args, "--root", "--", prefix + "/"], input="\n".join(wanted).encode() + b"\n"
        ).stdout
        found: dict[str, list[tuple[str | None, str | None, str]]] = {}
        fields = out.split(b"\0")
        index, current = 0, None
        while index < len(fields):
            field = fields[index].strip(b"\n")
            index += 1
            if field.startswith(b":") and current is not None and index < len(fields):
                meta = field.decode("ascii", "replace").split()
                path = fields[index].decode("utf-8", "surrogateescape")
                index += 1
                if len(meta) >= 4:
                    old = None if meta[2].strip("0") == "" else meta[2]
                    new = None if meta[3].strip("0") == "" else meta[3]
                    current.append((old, new, path))
            elif _COMMIT_ID.match(field.decode("ascii", "replace")):
                current = found.setdefault(field.decode("ascii"), [])
            elif field:
                raise StoreError(f"unexpected git diff-tree output: {field[:80]!r}")
        return found

    def tree_changes(self, old: str, new: str) -> dict[str, str | None]:
        """Path (relative to the trees) -> its blob id in tree ``new`` (None: no file there
        now) of every file that differs between trees ``old`` and ``new``: one ``git
        diff-tree``, trees only (no blob is read)."""
        self._check_open()
        if not (_COMMIT_ID.match(old) and _COMMIT_ID.match(new)):
            raise StoreError("tree_changes takes full tree ids only")
        args = ["diff-tree", "-r", "-z", "--no-renames", "--no-abbrev", old, new]
        fields = self._backend.git.run(args).stdout.split(b"\0")
        found: dict[str, str | None] = {}
        for meta, path in zip(fields[0::2], fields[1::2], strict=False):
            parts = meta.decode("ascii", "replace").split()
            if len(parts) < 5 or not parts[0].startswith(":"):
                raise StoreError(f"unexpected git diff-tree output: {meta[:80]!r}")
            gone = parts[1] in ("000000", "160000")  # removed, or now a submodule
            found[path.decode("utf-8", "surrogateescape")] = None if gone else parts[3]
        return found

    def read_blobs(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        """The contents of these blobs by id (a remote fetches the missing ones in one call)."""
        return dict(self.iter_blobs(sorted(set(blob_ids))))

    def iter_blobs(self, blob_ids: Sequence[str]) -> Generator[tuple[str, bytes], None, None]:
        """(id, content) of each of these blobs, in the order given (repeats too).

        One ``git cat-file --batch`` reads them all: the ids go in as one file, the contents
        come out as a stream, so a thousand blobs cost one process and no round trips, and
        only the blob being handed out is held. A remote fetches the missing ones first, in
        one call.
        """
        self._check_open()
        wanted = list(blob_ids)
        if not wanted:
            return
        self._backend.fetch_blobs(sorted(set(wanted)))
        git = self._backend.git
        with tempfile.TemporaryFile() as ids, tempfile.TemporaryFile() as errors:
            ids.write("".join(f"{oid}\n" for oid in wanted).encode())
            ids.seek(0)
            proc = git.popen(["cat-file", "--batch", "--buffer"], stdin=ids, stderr=errors)
            stdout = cast(IO[bytes], proc.stdout)
            _widen_pipe(stdout)
            try:
                for oid in wanted:
                    header = stdout.readline().decode("utf-8", "replace").rstrip("\n")
                    match = _HEADER.match(header)
                    if match is None or match.group(2) != "blob":
                        if header.endswith(" missing") or match is not None:
                            raise StoreError(f"the cases repo has no blob {oid}")
                        errors.seek(0)
                        said = git.redact(errors.read().decode("utf-8", "replace").strip())
                        raise StoreError(f"git cat-file failed reading {oid}: {said}")
                    size = int(match.group(3))
                    data = stdout.read(size)
                    stdout.read(1)
                    if len(data) != size:
                        raise StoreError(f"git cat-file ended inside blob {oid}")
                    yield oid, data
            finally:
                stdout.close()
                if proc.poll() is None:
                    proc.kill()
                proc.wait()

    def update_chain(self, compute: Callable[[Snapshot], ChainPlan[T]]) -> ChainCommitted[T]:
        """Commit each change ``compute`` plans as its own commit, in order, published at once.

        The same retry as :meth:`update`: when the head moved (a push was rejected), ``compute``
        runs again on the new head and the whole chain is rebuilt. Each change must touch paths
        no other change of the chain touches (one case folder per commit).
        """
        return _update_chain(self, compute)

    def update_batch(
        self,
        computes: Sequence[Callable[[Snapshot], Plan[T]]],
        *,
        before_publish: Callable[[str], None] | None = None,
    ) -> BatchCommitted[T]:
        """Commit what each of ``computes`` plans as its own commit, in order, in one push.

        Each ``compute`` reads the state the commits before it made (a later record of the
        same case builds on an earlier one). The same retry as :meth:`update`: when the push
        was rejected, every ``compute`` runs again on the new head. ``before_publish`` is
        told the last commit just before it is pushed (to note what the push carries).
        """
        return _update_batch(self, computes, before_publish)

    def update(self, compute: Callable[[Snapshot], Plan[T]]) -> Committed[T]:
        """Commit what ``compute`` plans as one commit; recompute on a newer head, then retry.

        ``compute`` may run several times and must derive everything from the snapshot it gets.
        Raises StoreError when the change cannot be recorded within the store's timeout.
        """
        self._check_open()
        backend = self._backend
        backend.begin(self._timeout)

        # What the last try read, planned and built: after a rejected push, most often another
        # writer changed other cases, and when every read gives the same answer on the new
        # head the plan stands (``compute`` derives it from the snapshot alone). Skipping it
        # and the blobs it wrote keeps a retry to the fetch, the trees and the push.
        last: tuple[RecordingSnapshot, Plan[T], Change, Built] | None = None

        def attempt(number: int) -> Committed[T] | None:
            """One try; None when the push was rejected (the head moved)."""
            nonlocal last
            if number > 1:
                backend.refresh()  # only the branch tip and the touched paths
            snap = self.snapshot()
            if last is not None and last[0].same_answers(snap):
                reads, plan, change, before = last
            else:
                reads, before = RecordingSnapshot(snap), None
                plan = compute(reads)
                if plan.change is None:
                    return Committed(None, snap.head, number, plan.result)
                change = masked_change(plan.change)
            assert plan.change is not None  # a plan without one returned above
            backend.prepare(snap, change)
            built = build_commit(backend.git, backend.build_dir(), snap, change, written=before)
            if built is None:
                return Committed(None, snap.head, number, plan.result)
            if not backend.publish(snap.head, built):
                last = reads, plan, change, built
                return None
            backend.after_publish(snap.head, built)
            return Committed(built.commit, built.commit, number, plan.result)

        def gave_up(attempts: int, elapsed: float) -> StoreError:
            obstacle = backend.obstacle()
            reason = obstacle or "the cases repo kept moving (or stayed locked)"
            # A lock file that refuses every push is a fault to fix, not a busy cases repo.
            return (StoreError if obstacle else CasesRepoBusy)(
                f"gave up recording the change after {attempts} attempts in {elapsed:.1f}s: "
                f"{reason}",
                hint="retry later, or raise the store timeout"
                + ("; remove the lock file if no git command is using it" if obstacle else ""),
            )

        try:
            return _retried(self, attempt, gave_up)
        finally:
            backend.end()


def _retried(
    store: CasesStore,
    attempt: Callable[[int], R | None],
    gave_up: Callable[[int, float], StoreError],
) -> R:
    """``attempt(n)`` for n = 1, 2, ... until it returns a result (None: the push was rejected,
    try again on the new head).

    Between attempts, a full-jitter exponential backoff (0.1 s doubling, at most 1 s: writers
    that collided spread out) that never sleeps past the store's timeout; once the timeout
    has passed, the error ``gave_up`` makes from the attempts made and the time spent.
    """
    start = store._monotonic()
    first = attempt(1)
    if first is not None:
        return first
    # Most runs publish at the first attempt, so tenacity (about 15 ms of CPU to import) is
    # loaded once one was rejected; it starts from that attempt's outcome (no second call),
    # so its stop and wait apply after the first attempt as after every later one.
    import tenacity

    elapsed = 0.0
    attempts = 1
    replayed = False
    ceiling = tenacity.wait_exponential(
        multiplier=BACKOFF_BASE, exp_base=BACKOFF_FACTOR, max=BACKOFF_CAP
    )

    def one() -> R | None:
        nonlocal attempts, replayed
        if not replayed:
            replayed = True
            return None  # the first attempt's outcome: rejected
        attempts += 1
        return attempt(attempts)

    def out_of_time(state: tenacity.RetryCallState) -> bool:
        nonlocal elapsed
        elapsed = store._monotonic() - start
        return elapsed >= store._timeout

    def backoff(state: tenacity.RetryCallState) -> float:
        return min(store._rng.uniform(0, ceiling(state)), store._timeout - elapsed)

    def fail(state: tenacity.RetryCallState) -> R:
        raise gave_up(attempts, elapsed)

    retrying = tenacity.Retrying(
        stop=out_of_time,
        wait=backoff,
        retry=tenacity.retry_if_result(lambda outcome: outcome is None),
        sleep=store._sleep,
        retry_error_callback=fail,
    )
    return cast(R, retrying(one))


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
    backend = store._backend
    backend.begin(store._timeout)

    def attempt(number: int) -> ChainCommitted[T] | None:
        """One try; None when the push was rejected (the head moved)."""
        if number > 1:
            backend.refresh()
        snap = store.snapshot()
        plan = compute(snap)
        chain: list[Built] = []
        tip = snap
        changes = tuple(masked_change(change) for change in plan.changes)
        if changes:
            # Each change touches its own paths: one check of them all against the head read.
            backend.prepare(snap, _union(changes))
        for change in changes:
            built = build_commit(backend.git, backend.build_dir(), tip, change)
            if built is not None:
                chain.append(built)
                tip = GitSnapshot(backend.git, backend.catfile, built.commit)
        if not chain:
            return ChainCommitted((), snap.head, number, plan.result)
        if not backend.publish(snap.head, chain[-1]):
            return None
        backend.after_publish(snap.head, _squashed(chain))
        commits = tuple(b.commit for b in chain)
        return ChainCommitted(commits, chain[-1].commit, number, plan.result)

    def gave_up(attempts: int, elapsed: float) -> StoreError:
        return StoreError(
            f"gave up recording the sweep's commits after {attempts} attempts in "
            f"{elapsed:.1f}s: the cases repo kept moving (or stayed locked)",
            hint="retry later, or raise the store timeout",
        )

    try:
        return _retried(store, attempt, gave_up)
    finally:
        backend.end()


@dataclass(frozen=True)
class BatchCommitted(Generic[T]):
    """Outcome of :meth:`CasesStore.update_batch`: per compute, its commit (None: nothing to
    commit) and its result, in order; ``head`` the tip after the push."""

    commits: tuple[str | None, ...]
    results: tuple[T, ...]
    head: str | None
    attempts: int


def _update_batch(
    store: CasesStore,
    computes: Sequence[Callable[[Snapshot], Plan[T]]],
    before_publish: Callable[[str], None] | None,
) -> BatchCommitted[T]:
    """See :meth:`CasesStore.update_batch`."""
    store._check_open()
    backend = store._backend
    backend.begin(store._timeout)

    def attempt(number: int) -> BatchCommitted[T] | None:
        """One try; None when the push was rejected (the head moved)."""
        if number > 1:
            backend.refresh()
        snap = store.snapshot()
        tip = snap
        chain: list[Built] = []
        commits: list[str | None] = []
        results: list[T] = []
        for compute in computes:
            # The commits built so far are real objects in this repository: the next
            # compute reads them like any commit.
            plan = compute(tip)
            results.append(plan.result)
            built = None
            if plan.change is not None:
                change = masked_change(plan.change)
                # A work tree matches the head read, not the commits built on it.
                backend.prepare(snap, change)
                built = build_commit(backend.git, backend.build_dir(), tip, change)
            if built is not None:
                chain.append(built)
                tip = GitSnapshot(backend.git, backend.catfile, built.commit)
            commits.append(built.commit if built is not None else None)
        if not chain:
            return BatchCommitted(tuple(commits), tuple(results), snap.head, number)
        if before_publish is not None:
            before_publish(chain[-1].commit)
        if not backend.publish(snap.head, chain[-1]):
            return None
        backend.after_publish(snap.head, _squashed(chain))
        return BatchCommitted(tuple(commits), tuple(results), chain[-1].commit, number)

    def gave_up(attempts: int, elapsed: float) -> StoreError:
        obstacle = backend.obstacle()
        return (StoreError if obstacle else CasesRepoBusy)(
            f"gave up recording {len(computes)} change(s) after {attempts} attempts in "
            f"{elapsed:.1f}s: {obstacle or 'the cases repo kept moving (or stayed locked)'}",
            hint="retry later, or raise the store timeout",
        )

    try:
        return _retried(store, attempt, gave_up)
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


#: How much blob content ``git cat-file`` may write ahead of the reader (Linux's default pipe
#: holds 64 KiB; unprivileged processes may ask for up to 1 MiB).
_PIPE_AHEAD = 1024 * 1024


def _widen_pipe(pipe: IO[bytes]) -> None:
    # A reader that keeps up with git (blobs parsed in worker processes) would otherwise wait
    # for git to be scheduled again every 64 KiB: on a busy machine that wait was half of a
    # cold listing's wall time. Where the system has no such setting, the pipe stays as is.
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_AHEAD)
