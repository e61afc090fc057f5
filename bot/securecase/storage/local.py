"""Local cases repo: commit in place under a lock, keep the work tree in step, lose no edit.

Crash safety: the commit is built from objects only (``store.build_commit``) and published by
one compare-and-swap ``update-ref``; until then only unreachable objects exist.

Sharing the checkout with a human: the branch, the touched work-tree files and the index move
together while the run holds git's own ``.git/index.lock`` (see :mod:`securecase.storage.locks`),
as ``git commit`` does. A human's git command holding it makes the run wait (up to the store
timeout) and then fail naming the file; a human's ``git commit`` that read HEAD before the bot
moved the branch fails its own compare-and-swap instead of reverting the bot's update. The
touched files are written atomically (temp file + rename) before the new index is renamed into
place. A run killed in between leaves its ``index.lock`` and an owner record; the next run
proves the owner gone, brings the recorded paths in step with HEAD and removes the lock.

Before committing, every touched path is checked: its work tree and index content must be the
committed one or a recent committed version of that path (recoverable from history).
Anything else is a human's uncommitted edit and the run refuses.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from securecase.errors import StoreError
from securecase.storage.git import Git, GitIdentity
from securecase.storage.locks import GitLock, describe_lock, left_by_dead_run, log, remove_stale
from securecase.storage.store import Built, Change, Snapshot, _CatFile, touched_paths

BACKDATE_NS = 5 * 10**9  # written files get an mtime this far back (see _write)
WRITTEN_KEPT = 2000  # files remembered in the written-files record
INDEX_KEY = "\0index"  # the index file's entry among the checked signatures
HISTORY_DEPTH = 50  # commits per path searched for the versions a run may have left behind
_CONFLICT, _NOT_A_FILE = "<conflict>", "<not a regular file>"
_LOCK_EXISTS = re.compile(r"Unable to create '([^']+\.lock)': File exists")
OBJECT_FORMATS = frozenset({"sha1", "sha256"})


INIT_WAIT = 10.0  # seconds to wait for a concurrent run creating the same repository


def open_local(location: str, identity: GitIdentity) -> LocalBackend | str:
    """A backend for the work tree at ``location`` (created when missing or empty).

    Returns the absolute path instead when ``location`` is a bare repository (used as a remote).
    Concurrent first runs are safe: the repository appears complete, by one rename.
    """
    path = os.path.realpath(os.path.expanduser(location))
    deadline = time.monotonic() + INIT_WAIT
    while True:
        found = _probe(path, identity)
        if found is not None:
            return found
        late = time.monotonic() > deadline
        if not late and (not os.path.exists(path) or os.path.isdir(path) and not os.listdir(path)):
            _create(path, identity)
            continue
        if not os.path.exists(os.path.join(path, ".git")) or late:
            raise StoreError(
                f"cases repo location {path} is not the top folder of a git repository, nor empty",
                hint="point to the repository's top folder, a bare repository, a URL, "
                "or a new folder",
            )
        time.sleep(0.05)  # a concurrent run may be creating it in place


def _probe(path: str, identity: GitIdentity) -> LocalBackend | str | None:
    """The repository at exactly ``path``: a backend, the path of a bare one, or None."""
    if not os.path.isdir(path):
        return None
    git = Git(path, identity=identity)
    # One process for everything start-up needs; in a bare repository --show-toplevel fails
    # after the other answers are printed.
    probe = git.run(
        ["rev-parse", "--path-format=absolute", "--is-bare-repository", "--git-dir"]
        + ["--git-common-dir", "--git-path", "index", "--show-object-format", "--show-toplevel"],
        check=False,
    )
    if "dubious ownership" in probe.stderr:
        raise git.error(
            ["rev-parse"],
            probe,
            hint="run as the folder's owner or trust it with "
            "git config --global --add safe.directory <path>",
        )
    answers = probe.text.splitlines()
    if len(answers) >= 2 and answers[0] == "true":
        return path if os.path.realpath(answers[1]) == path else None
    if probe.returncode != 0 or len(answers) != 6 or answers[4] not in OBJECT_FORMATS:
        return None
    _, git_dir, common_dir, index, _, top = answers
    if os.path.realpath(top) == path:
        return LocalBackend(path, identity, git_dir=git_dir, common_dir=common_dir, index=index)
    return None


def _create(path: str, identity: GitIdentity) -> None:
    """``git init -b main`` aside, then rename it into place (losing a race is fine)."""
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.securecase-", dir=parent)
    except OSError:
        staging = None
    try:
        if staging is not None:
            Git(staging, identity=identity).run(["init", "-q", "-b", "main"])
            try:
                if os.path.exists(path):
                    os.rename(os.path.join(staging, ".git"), os.path.join(path, ".git"))
                else:
                    os.rename(staging, path)
                    staging = None
                return
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    return  # another run created it first
        try:  # no writable parent or no rename across file systems: initialise in place
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the cases repo folder {path}: {exc}") from exc
        Git(path, identity=identity).run(["init", "-q", "-b", "main"], check=False)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


class LocalBackend:
    """Commits to the branch checked out in a work tree (see the module docstring)."""

    def __init__(
        self,
        worktree: str,
        identity: GitIdentity,
        *,
        git_dir: str,
        common_dir: str,
        index: str,
    ) -> None:
        self.git = Git(worktree, identity=identity)
        self.catfile = _CatFile(self.git)
        self.root = worktree
        self._index = index
        self._lock_path = os.path.join(common_dir, "securecase.lock")
        self._tmp = os.path.join(git_dir, "securecase-tmp")
        self.private_dir: str | None = os.path.join(git_dir, "securecase")
        self._written = WrittenFiles(os.path.join(git_dir, "securecase-written.json"))
        self._lock_fd: int | None = None
        self._ref: str | None = None
        self._checked: dict[str, Signature | None] = {}
        self._index_lock = GitLock(
            index, os.path.join(git_dir, "securecase-index-owner.json"), self._tmp
        )
        self._deadline = 0.0
        self._timeout = 0.0
        self._obstacle: str | None = None

    # -- reading and locking -------------------------------------------------------------
    def current_head(self) -> str | None:
        """The tip of the checked-out branch (None when unborn); detached HEAD is read too."""
        both = self.git.run(["rev-parse", "HEAD", "--symbolic-full-name", "HEAD"], check=False)
        answers = both.text.splitlines()
        if both.returncode == 0 and len(answers) == 2:
            self._ref = answers[1] if answers[1].startswith("refs/") else None
            return answers[0]
        ref = self.git.run(["symbolic-ref", "-q", "HEAD"], check=False)  # unborn branch
        self._ref = ref.text if ref.returncode == 0 else None
        if self._ref is not None:
            # HEAD names a branch that did not resolve a moment ago: unborn. Should another
            # process create it meanwhile, publishing "must not exist" fails and we retry.
            return None
        tip = self.git.run(
            ["rev-parse", "-q", "--verify", f"{self._ref or 'HEAD'}^{{commit}}"], check=False
        )
        return tip.text if tip.returncode == 0 else None

    def begin(self, timeout: float) -> None:
        """Take the repository's securecase lock, waiting at most ``timeout`` seconds.

        Then repair what a killed run left: its ``index.lock`` and the paths it was updating.
        """
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise StoreError(f"cannot open the lock file {self._lock_path}: {exc}") from exc
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                remaining = self._deadline - time.monotonic()
                if remaining <= 0:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise StoreError(
                        f"another securecase run{holder} holds the lock on {self.root} "
                        f"for more than {timeout:g}s: {describe_lock(self._lock_path)}",
                        hint=f"wait for it to finish; the lock is {self._lock_path}",
                    ) from None
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, 0.1)
        self._lock_fd = fd
        # Who holds it, for the message of a run that waits in vain (flock itself says nothing).
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self.git.inherit_fds = (fd,)  # a git child outliving a killed run keeps the lock held
        shutil.rmtree(self._tmp, ignore_errors=True)  # debris of killed runs
        os.makedirs(self._tmp, exist_ok=True)
        self._recover()

    def _recover(self) -> None:
        """Finish the work-tree and index part of a killed run's update, then drop its lock."""
        owner = left_by_dead_run(self._index_lock, run_lock_held=True)
        if owner is None:
            return
        self._index_lock.adopt(owner)
        said = (self._index_lock.path, owner.pid, len(owner.paths))
        head = self.current_head()
        if head is None:
            self._index_lock.release()
            log.warning(
                "securecase: removed %s left by securecase run %d (no longer running)", *said[:2]
            )
            return
        files: dict[str, bytes] = {}
        blobs: dict[str, str] = {}
        removed = []
        for path in owner.paths:
            found = self.catfile.info(f"{head}:{path}")
            if found is None or found[1] != "blob":
                removed.append(path)
                continue
            content = self.catfile.contents(found[0])
            assert content is not None
            files[path], blobs[path] = content[1], found[0]
        self._checked = {}
        self._sync(head, files, blobs, tuple(removed))
        log.warning(
            "securecase: removed %s left by securecase run %d (no longer running) and brought "
            "the %d path(s) it was updating in step with HEAD",
            *said,
        )

    def end(self) -> None:
        """Release the index lock (if an update stopped half-way) and the securecase lock."""
        self._index_lock.release()
        self.git.inherit_fds = ()
        if self._lock_fd is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            os.close(self._lock_fd)
            self._lock_fd = None

    def build_dir(self) -> str:
        """Where temporary index and object files go (in the git dir; cleaned under the lock)."""
        return self._tmp

    def refresh(self) -> None:
        """Before another attempt: keep human commits from moving the branch meanwhile.

        The first attempt takes ``index.lock`` only to publish, so a human's git commands wait
        for no computation. Once a commit moved the branch under us, the next attempt reads,
        computes and publishes holding it: only a human commit already past the index can
        still move the branch, so a busy checkout cannot starve the run.
        """
        if not self._index_lock.held:
            self._index_lock.acquire(self._deadline, what="cannot update the index")

    def close(self) -> None:
        """Nothing to remove for a local repository."""

    def fetch_history(self, path: str | None = None, since: str | None = None) -> None:
        """A local repository has its whole history already."""

    def fetch_blobs(self, blob_ids: Sequence[str]) -> None:
        """A local repository has every blob already."""

    # -- protecting uncommitted work -----------------------------------------------------
    def prepare(self, snap: Snapshot, change: Change) -> None:
        """Refuse when HEAD is detached or a touched path holds uncommitted work."""
        if self._ref is None or not self._ref.startswith("refs/heads/"):
            raise StoreError(
                f"HEAD of the cases repo {self.root} is not on a branch",
                hint="check out the branch securecase should commit to",
            )
        files, removed = touched_paths(snap, change)
        bad = self._unsafe(snap.head, sorted({*files, *removed}))
        self._refuse(snap.head, bad)

    def _refuse(self, head: str | None, bad: Sequence[str]) -> None:
        """Raise for paths that hold work a run of ours cannot have left, with the reason."""
        for path in bad:
            link = self._committed_symlink(head, path)
            if link is not None:
                raise StoreError(
                    f"{link} is a symbolic link committed in the cases repo {self.root}; "
                    f"securecase writes {path} as a regular file and never through a link",
                    hint=f"replace the link by a real folder or file (git rm {link}, commit), "
                    "then run securecase again",
                )
        if bad:
            shown = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
            raise StoreError(
                f"the cases repo {self.root} has uncommitted changes in {shown}",
                hint="commit or stash them (git stash), then run securecase again",
            )

    def _committed_symlink(self, head: str | None, path: str) -> str | None:
        """``path`` or the folder above it that HEAD records as a symbolic link, if any."""
        if head is None:
            return None
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        out = self.git.run(["ls-tree", "-z", "--full-tree", head, "--", *prefixes]).stdout
        for meta, name in _entries(out):
            if meta.startswith("120000 ") and name in prefixes:
                return name
        return None

    def _unsafe(self, head: str | None, touched: Sequence[str]) -> list[str]:
        """Touched paths holding work a run of ours cannot have left: a human's edits.

        A run writes the work-tree file, then the index entry, each time to the committed
        version. So after interrupted runs both hold committed versions of the path, the work
        tree one at least as recent as the index one. Anything else is refused.
        """
        if not touched:
            return []
        committed: dict[str, str | None] = dict.fromkeys(touched)
        if head is not None:
            for path in touched:  # asked of the running cat-file: no process per run
                found = self.catfile.info(f"{head}:{path}")
                committed[path] = found[0] if found is not None and found[1] == "blob" else None
        states = self._states(touched)
        unclean = [p for p in touched if states[p] != (committed[p], committed[p])]
        if not unclean:
            return []
        ages = self._history(head, unclean)
        bad = []
        for path in unclean:
            known = {committed[path]: 0, **ages.get(path, {})}
            index, worktree = states[path]
            if index not in known or worktree not in known or known[worktree] > known[index]:
                bad.append(path)
        return bad

    def _states(self, touched: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
        """(index blob, work-tree blob) per path; None when absent."""
        # Signatures first: a change while we read shows up when after_publish compares them.
        self._checked = {p: signature(os.path.join(self.root, p)) for p in touched}
        self._checked[INDEX_KEY] = signature(self._index)
        index: dict[str, str | None] = dict.fromkeys(touched)
        out = self.git.run(["ls-files", "-s", "-z", "--", *touched]).stdout
        for meta, name in _entries(out):
            _, oid, stage = meta.split()
            if name in index:
                index[name] = oid if stage == "0" and index[name] is None else _CONFLICT
            else:  # a staged folder where the change writes or removes a file
                for path in touched:
                    if name.startswith(path + "/"):
                        index[path] = _CONFLICT
        worktree: dict[str, str | None] = dict.fromkeys(touched)
        written = self._written.load()
        unknown = []
        for path in touched:
            kind = self._kind(path)
            known = written.get(path)
            if kind == "file" and known is not None and known[1] == self._checked.get(path):
                worktree[path] = known[0]  # still the file a run of ours wrote
            elif kind == "file":
                unknown.append(path)
            elif kind != "absent":
                worktree[path] = _NOT_A_FILE
        # Other files whose stat data still matches their index entry need no hashing either:
        # diff-files tells which do not (hashing only racily-clean ones), so a big raw report
        # costs a stat instead of a full read.
        differing: set[str] = set()
        if unknown:
            differing = set(
                self.git.run(["diff-files", "--name-only", "-z", "--", *unknown])
                .stdout.decode("utf-8", "surrogateescape")
                .split("\0")
            )
        to_hash = []
        for path in unknown:
            if index[path] not in (None, _CONFLICT) and path not in differing:
                worktree[path] = index[path]
            else:
                to_hash.append(path)
        if to_hash:  # hashed as `git add` would (the repository's filters apply)
            oids = self.git.run(
                ["hash-object", "--stdin-paths"], input="".join(f"{p}\n" for p in to_hash).encode()
            ).text.split()
            worktree.update(zip(to_hash, oids, strict=True))
        return {path: (index[path], worktree[path]) for path in touched}

    def _kind(self, relpath: str) -> str:
        """ "file", "absent", or "other" (folder, symlink, or a non-folder parent)."""
        current = self.root
        parts = relpath.split("/")
        for n, part in enumerate(parts):
            current = os.path.join(current, part)
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                return "absent"
            except NotADirectoryError:
                return "other"
            last = n == len(parts) - 1
            if (last and not stat.S_ISREG(mode)) or (not last and not stat.S_ISDIR(mode)):
                return "other"
        return "file"

    def _history(self, head: str | None, paths: Sequence[str]) -> dict[str, dict[str | None, int]]:
        """Per path, the blob ids (None = absent) it had recently, with their age (0 = newest)."""
        ages: dict[str, dict[str | None, int]] = {}
        if head is None:
            return ages
        out = self.git.run(
            ["log", "-z", f"-n{HISTORY_DEPTH}", "--format=%x01", "--raw", "--no-abbrev"]
            + ["--no-renames", "--root", head, "--", *paths]
        ).stdout
        tokens = out.split(b"\0")
        for n, token in enumerate(tokens[:-1]):
            raw = token.lstrip(b"\n")
            if raw.startswith(b":"):
                _, _, old, new, _ = raw.decode().split(" ", 4)
                seen = ages.setdefault(tokens[n + 1].decode("utf-8", "surrogateescape"), {})
                for oid in (new, old):  # newest first
                    seen.setdefault(oid if oid.strip("0") else None, len(seen))
        return ages

    # -- publishing ----------------------------------------------------------------------
    def publish(self, old: str | None, built: Built) -> bool:
        """Move the branch from ``old`` to the new commit; False when it moved meanwhile.

        Holds git's ``index.lock`` from here to the end of :meth:`after_publish`, so no git
        command of a human reads or writes the index between the branch move and its update.
        """
        assert self._ref is not None
        touched = tuple(sorted({*built.blobs, *built.removed}))
        if not self._index_lock.held:
            self._index_lock.acquire(self._deadline, what="cannot update the index")
        try:
            self._index_lock.note(built.commit, touched)
            # The index or a touched file changed since prepare(): check again, now that
            # nobody can stage anything until we are done.
            unchanged = all(
                signature(os.path.join(self.root, p)) == self._checked.get(p, MISSING)
                for p in touched
            ) and signature(self._index) == self._checked.get(INDEX_KEY, MISSING)
            if not unchanged:
                self._refuse(old, self._unsafe(old, touched))
            return self._move_branch(old, built)
        except BaseException:
            self._index_lock.release()
            raise

    def _move_branch(self, old: str | None, built: Built) -> bool:
        assert self._ref is not None
        args = ["update-ref", "-m", f"securecase: {built.message_subject}", self._ref]
        result = self.git.run([*args, built.commit, old or ""], check=False)  # "": must not exist
        if result.returncode == 0:
            self._obstacle = None
            return True
        lock = _LOCK_EXISTS.search(result.stderr)
        if lock:
            # git records no owner in a ref lock; one older than the whole time a run may take
            # while we hold both the securecase lock and index.lock is debris of a killed git.
            why = f"older than the store timeout ({self._timeout:g}s) while securecase held "
            why += "the repository's locks"
            if not remove_stale(lock.group(1), older_than=self._timeout, why=why):
                self._obstacle = f"{describe_lock(lock.group(1))} blocks the branch update"
            return False
        now = self.git.run(["rev-parse", "-q", "--verify", self._ref], check=False)
        if (now.text if now.returncode == 0 else None) != old:
            return False
        raise self.git.error(args, result)

    def obstacle(self) -> str | None:
        """The lock file that made the last publish fail, with its age."""
        return self._obstacle

    def after_publish(self, old: str | None, built: Built) -> None:
        """Bring the touched paths of the work tree and index to the new commit."""
        try:
            self._sync(old, built.files, built.blobs, built.removed)
        finally:
            self._index_lock.release()

    def _sync(
        self,
        old: str | None,
        files: Mapping[str, bytes],
        blobs: Mapping[str, str],
        removed: Sequence[str],
    ) -> None:
        """Write ``files``, remove ``removed`` and set their index entries, under index.lock.

        A work-tree file edited since the check keeps the edit (the index still moves to the
        committed blob, so the edit shows as a change against the new HEAD, never as a
        revert of it). The new index replaces the old one by renaming the lock.
        """
        touched = sorted({*blobs, *removed})
        if old is not None:  # a chain publishes several commits' paths: record them all
            self._index_lock.note(old, tuple(touched))
        edited = set()
        for path in touched:
            if signature(os.path.join(self.root, path)) != self._checked.get(path, MISSING):
                edited.add(path)
        if edited:
            edited = set(self._unsafe(old, sorted(edited)))
        written: dict[str, tuple[str, Signature]] = {}
        try:
            for path, data in files.items():
                if path not in edited:
                    written[path] = (blobs[path], self._write(path, data))
            for path in removed:
                if path not in edited:
                    self._remove(path)
        except OSError as exc:
            log.warning("securecase: could not update the work tree of %s: %s", self.root, exc)
        zero = "0" * len(old or next(iter(blobs.values()), "0" * 40))
        info = [f"0 {zero}\t{p}\0" for p in removed]
        info += [f"100644 {oid}\t{p}\0" for p, oid in blobs.items()]
        # Built on a copy, as git builds a new index in its lock file. No `--refresh`: the
        # files were just written, so git would have to hash them again (racily clean).
        private = os.path.join(self._tmp, f"index-{os.urandom(4).hex()}")
        try:
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(self._index, private)
            self.git.run(
                ["update-index", "-z", "--index-info"],
                input="".join(info).encode(),
                env={"GIT_INDEX_FILE": private},
            )
            with open(private, "rb") as handle:
                self._index_lock.write(handle.read())
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(private)
        self._index_lock.commit()
        self._written.save(written, removed=removed)

    def _write(self, relpath: str, data: bytes) -> Signature:
        """Write atomically; returns the file's signature (mtime set a few seconds back)."""
        target = os.path.join(self.root, relpath)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        for folder in (self._tmp, os.path.dirname(target)):
            temp = os.path.join(folder, f".securecase-{os.urandom(8).hex()}.tmp")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                # Any later write, by anyone, stamps the file with the current time, so this
                # back-dated mtime in the signature proves the content is still ours without
                # the racy-timestamp doubt a "now" mtime would leave.
                moment = time.time_ns() - BACKDATE_NS
                os.utime(temp, ns=(moment, moment))
                os.replace(temp, target)
                found = signature(target)
                assert found is not None
                return found
            except OSError as exc:
                if os.path.exists(temp):
                    os.unlink(temp)
                if exc.errno != errno.EXDEV:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _remove(self, relpath: str) -> None:
        target = os.path.join(self.root, relpath)
        if os.path.lexists(target):
            os.unlink(target)
        folder = os.path.dirname(target)
        while folder != self.root and folder.startswith(self.root):
            try:
                os.rmdir(folder)
            except OSError:
                break
            folder = os.path.dirname(folder)


@dataclass(frozen=True, slots=True)
class Signature:
    """What ``lstat`` tells about a file: equal signatures, same content (see ``_write``)."""

    size: int
    mtime_ns: int
    inode: int
    mode: int


MISSING = Signature(-1, -1, -1, -1)  # never equal to a real file's signature


def signature(path: str) -> Signature | None:
    """The file's signature, None when nothing is there."""
    try:
        found = os.lstat(path)
    except OSError:
        return None
    return Signature(found.st_size, found.st_mtime_ns, found.st_ino, found.st_mode)


class WrittenFiles:
    """Blob id and signature of the files recent runs wrote, so they need no re-hashing.

    Only a hint: a missing, stale or unreadable record just means hashing the file again.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> dict[str, tuple[str, Signature]]:
        """Path → (blob id, signature) as last recorded."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                raw = json.load(handle)
            return {p: (blob, Signature(*sig)) for p, (blob, sig) in raw.items()}
        except (OSError, ValueError, TypeError):
            return {}

    def save(self, written: dict[str, tuple[str, Signature]], *, removed: Sequence[str]) -> None:
        """Record ``written`` (newest last), forget ``removed``, keep the newest entries."""
        entries = self.load()
        for path in (*written, *removed):
            entries.pop(path, None)
        entries.update(written)
        kept = list(entries.items())[-WRITTEN_KEPT:]
        data = {p: [blob, [s.size, s.mtime_ns, s.inode, s.mode]] for p, (blob, s) in kept}
        temp = f"{self.path}.{os.urandom(4).hex()}.tmp"
        try:
            with open(temp, "w", encoding="utf-8") as handle:
                json.dump(data, handle, separators=(",", ":"))
            os.replace(temp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp)


def _read_holder(fd: int) -> str:
    """ " (pid N on HOST)" as the holder of the securecase lock wrote it, or ""."""
    try:
        pid, host = os.pread(fd, 200, 0).decode().split()
        return f" (pid {int(pid)} on {host})"
    except (OSError, ValueError):
        return ""


def _entries(out: bytes) -> list[tuple[str, str]]:
    """(metadata, path) pairs of ``ls-tree``/``ls-files -s`` -z output."""
    pairs = []
    for entry in out.split(b"\0"):
        if entry:
            meta, _, name = entry.partition(b"\t")
            pairs.append((meta.decode(), name.decode("utf-8", "surrogateescape")))
    return pairs
