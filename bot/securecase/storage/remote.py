"""Remote cases repo: a shallow, partial, temporary clone; push without force; refetch on race.

The clone is ``git init`` + a remote configured in the repository config (its URL without
credentials: a token reaches git only through the environment, see
:func:`~securecase.storage.git.remote_credentials`) + ``fetch --depth 1`` of the default
branch, with a partial-clone filter that depends on what the command reads (:class:`Scope`):

- ``PATHS`` (ingest, ``cases show``, ``cases history``): ``--filter=tree:4``, the commit and
  the top folders down to the owners' (``cases/<provider>/<owner>/``, each a listing of its
  repositories); then the trees on the way to each wanted path, one
  batched fetch by object id per folder level (``tree:0``: each tree alone), and the wanted
  blobs in one more. Never a tree or a blob of another case.
- ``TREES`` (``cases list``, ``report``, ``policy diff``): ``--filter=blob:none``, every tree
  of the tip; blobs in one batch when read.
- ``FULL`` (``sweep``): every object of the tip.

A server that ignores partial-clone filters would send every blob of the tip: the clone
refuses it (:class:`StoreError`, exit 3) unless ``$SECURECASE_ALLOW_FULL_CLONE`` is ``1``
(the CLI's ``--allow-full-clone`` sets it).
Commits are pushed without a thin pack, so git never fetches the old version of a changed
file to delta against it.
"""

from __future__ import annotations

import enum
import os
import shutil
import urllib.parse
from collections.abc import Mapping, Sequence

from securecase.errors import CasesRepoBusy, PushRefused, StoreError
from securecase.storage.git import Git, GitIdentity, GitResult, redact, remote_credentials
from securecase.storage.locks import describe_lock
from securecase.storage.scratch import run_directory
from securecase.storage.store import Built, Change, Snapshot, _CatFile, tree_entries

_AUTH_HINT = "check the cases repo URL, the network, and the credentials (token or SSH key)"
_RETRY_REMOTE_REJECTS = ("lock", "failed to update ref", "expected", "incorrect old value")
#: Set to ``1`` to accept a server that ignores partial-clone filters (a full clone).
ALLOW_FULL_CLONE_ENV = "SECURECASE_ALLOW_FULL_CLONE"
_LOCAL_UPLOAD_PACK = "git -c uploadpack.allowFilter=true upload-pack"
#: What git says when the server does not take the ``--filter`` it was asked for.
_FILTER_IGNORED = "filtering not recognized by server"
#: What git says when the server caps the tree filter's depth (uploadpackfilter.tree.maxDepth).
_TREE_DEPTH_REFUSED = "tree filter allows max depth"


class Scope(enum.Enum):
    """What a clone of the remote fetches (see the module docstring)."""

    # The commit with the top four levels of folders (root, cases/, cases/<provider>/: a few
    # entries each; cases/<provider>/<owner>/: one per repository) and their files
    # (policy.yaml): four folder levels fewer to walk, on every retry too. Not the fifth: a
    # repository's folder lists every case it ever had, and the tip's fetch would grow with
    # the cases instead of the repositories (benchmarks/README.md, "Contention").
    PATHS = "tree:4"
    TREES = "blob:none"
    FULL = ""

    @property
    def levels(self) -> int:
        """How many levels of the tip's folders the tip's fetch brings (trees and files)."""
        return _filter_levels(self.value)


def _filter_levels(filter_spec: str) -> int:
    """``tree:<depth>`` sends every object less than ``depth`` levels below the root."""
    return int(filter_spec.partition(":")[2]) if filter_spec.startswith("tree:") else 0


def _config_value(value: str) -> str:
    if any(c in value for c in "\n\r\0"):
        raise StoreError(f"invalid cases repo location {redact(value)!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _local_path(url: str) -> str | None:
    """The folder of a bare repository given as a path or ``file://`` URL, else None."""
    if url.startswith("file://"):
        return urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    return url if os.path.isabs(url) else None


class RemoteBackend:
    """Commits through a temporary clone of a remote (see the module docstring).

    ``paths`` are files or folders whose content is fetched up front (a folder: everything
    under it); anything else is fetched when read (a tree with its subtrees, no blobs).
    """

    def __init__(
        self,
        url: str,
        identity: GitIdentity,
        paths: Sequence[str],
        timeout: float,
        *,
        scope: Scope = Scope.PATHS,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        self._tmp = run_directory()
        repo = os.path.join(self._tmp, "repo")
        credentials = remote_credentials(url, environ)
        url = credentials.url
        self.git = Git(
            repo, identity=identity, secrets=credentials.secrets, env_config=credentials.config
        )
        self.catfile = _CatFile(self.git)
        self.private_dir: str | None = None  # the clone is gone after this run
        self._scope = scope
        self._paths = [p.rstrip("/") for p in paths]
        self._allow_full = environ.get(ALLOW_FULL_CLONE_ENV, "") == "1"
        self._timeout = timeout
        self._where = self.git.redact(url)
        self._bare_dir = _local_path(url)
        self._tip: str | None = None
        self._history: str | None = None  # how much history was fetched: "all" or a date
        self._fetched: set[str] = set()  # blob and tree ids this clone was sent by id
        self._levels: dict[str, int] = {}  # commit -> folder levels its own fetch brought
        self._tip_filter = scope.value  # tree:0 once the server refused a deeper one
        self._whole: set[str] = set()  # trees fetched with every tree under them
        self._entries: dict[str, dict[str, tuple[str, str]]] = {}  # tree id -> its entries
        self._history_ref = False  # refs/securecase/history holds the fetched history
        try:
            os.mkdir(repo)
            self.git.run(["init", "-q", "-b", "main"])
            self._configure(url)
            self._branch = self._default_branch()
            self.refresh()
        except BaseException:
            self.close()
            raise

    def _configure(self, url: str) -> None:
        """Name the remote in .git/config (mode 0600 in a private folder), not on argv."""
        lines = ['[remote "origin"]', f"\turl = {_config_value(url)}"]
        if self._bare_dir is not None:
            # A bare repository on this machine is served by a git process of ours: it may
            # take filters whatever its own configuration says (GitHub's servers do too).
            lines.append(f"\tuploadpack = {_config_value(_LOCAL_UPLOAD_PACK)}")
        if self._scope is not Scope.FULL:
            self.git.run(["config", "core.repositoryformatversion", "1"])
            # A read outside what was fetched faults in its trees, never a blob it skips.
            lines += ["\tpromisor = true", "\tpartialclonefilter = blob:none"]
            lines += ["[extensions]", "\tpartialclone = origin"]
        config = os.path.join(self.git.cwd, ".git", "config")
        os.chmod(config, 0o600)
        with open(config, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")

    def _net(self, args: list[str], *, stdin: bytes | None = None, check: bool = True) -> GitResult:
        result = self.git.run(args, input=stdin, timeout=self._timeout, check=False)
        if check and result.returncode != 0:
            raise self._error(args, result)
        return result

    def _filtered(
        self, args: list[str], filter_spec: str, *, stdin: bytes | None = None, check: bool = True
    ) -> GitResult:
        """``git fetch`` with a partial-clone filter; refuses a server that ignores it.

        git says so before it asks for the objects: the fetch is stopped there, before the
        server sends the whole repository.
        """
        args = [*args, f"--filter={filter_spec}"]
        if self._allow_full:
            return self._net(args, stdin=stdin, check=check)
        result, ignored = self.git.run_until(
            args, _FILTER_IGNORED, input=stdin, timeout=self._timeout
        )
        if not ignored and check and result.returncode != 0:
            raise self._error(args, result)
        if ignored:
            raise StoreError(
                f"the cases repo {self._where} ignores partial-clone filters: securecase would "
                "download every file of the repository (all raw reports) instead of the "
                "few it reads",
                hint="enable uploadpack.allowFilter on the git server (GitHub and GitLab do), "
                f"or pass --allow-full-clone (env {ALLOW_FULL_CLONE_ENV}=1) to accept a full clone",
            )
        return result

    def _error(self, args: list[str], result: GitResult) -> StoreError:
        detail = self.git.error(args, result).message
        return StoreError(f"cannot use the cases repo {self._where}: {detail}", hint=_AUTH_HINT)

    def _default_branch(self) -> str:
        """The branch the remote's HEAD names; ``main`` for an empty remote."""
        out = self._net(["ls-remote", "--symref", "origin", "HEAD", "refs/heads/main"]).text
        symref, names = None, set()
        for line in out.splitlines():
            left, _, name = line.partition("\t")
            if left.startswith("ref: ") and name == "HEAD":
                symref = left[len("ref: ") :]
            else:
                names.add(name)
        if "HEAD" in names and symref and symref.startswith("refs/heads/"):
            return symref[len("refs/heads/") :]
        if "refs/heads/main" in names:
            return "main"
        # An empty remote may get its first push between the two calls: main then exists.
        heads = self._net(["ls-remote", "--heads", "origin"]).text.splitlines()
        if not heads or any(line.endswith("\trefs/heads/main") for line in heads):
            return "main"
        raise StoreError(
            f"the remote HEAD of {self._where} does not name a branch",
            hint="set the cases repo's default branch",
        )

    def current_head(self) -> str | None:
        """The remote tip as last fetched (or pushed)."""
        return self._tip

    def refresh(self) -> None:
        """Fetch the branch tip (depth 1) and what the scope and ``paths`` name under it."""
        ref = f"refs/heads/{self._branch}"
        args = ["fetch", "-q", "--depth", "1", "--no-tags", "--no-write-fetch-head"]
        args += ["origin", f"+{ref}:refs/remotes/origin/{self._branch}"]
        if self._scope is Scope.FULL:
            result = self._net(args, check=False)
        else:
            result = self._filtered(args, self._tip_filter, check=False)
            if result.returncode != 0 and _TREE_DEPTH_REFUSED in result.stderr:
                # Often capped at 0: the commit alone, then every folder level fetched by id.
                self._tip_filter = "tree:0"
                result = self._filtered(args, self._tip_filter, check=False)
        if result.returncode != 0:
            if f"couldn't find remote ref {ref}" in result.stderr:
                self._tip = None  # still empty
                return
            raise self._error(args, result)
        self._tip = self.git.run(["rev-parse", f"refs/remotes/origin/{self._branch}"]).text
        if self._scope is Scope.FULL:
            return
        # What the tip's fetch brought is not fetched again (see fetch_paths).
        self._levels[self._tip] = _filter_levels(self._tip_filter)
        found = self.fetch_paths([self._tip], self._paths)
        wanted: list[str] = []
        folders: list[str] = []
        for path in self._paths:
            kind, oid = found.get((self._tip, path)) or ("", "")
            if kind == "blob":
                wanted.append(oid)
            elif kind == "tree":
                folders.append(oid)
        wanted += self._fetch_folders(folders)
        self.fetch_blobs(wanted)

    def _fetch_folders(self, trees: Sequence[str]) -> list[str]:
        """The ids of the files under these folders, their trees fetched first (in a
        ``PATHS`` clone: each folder with every tree under it, no file, in one call)."""
        if self._scope is Scope.PATHS:
            self._fetch_objects(trees, "blob:none", known=self._whole)
        files: list[str] = []
        for tree in trees:
            listed = self.git.run(["ls-tree", "-r", "-z", tree]).stdout.split(b"\0")
            files += [e.split(b"\t")[0].split()[2].decode() for e in listed if b" blob " in e]
        return files

    def _fetch_objects(
        self, object_ids: Sequence[str], filter_spec: str, *, known: set[str] | None = None
    ) -> None:
        """Fetch these objects by id in one call (the server sends what the filter keeps),
        those not in ``known`` (by default: the objects fetched by id before)."""
        known = self._fetched if known is None else known
        missing = sorted(set(object_ids) - known)
        if not missing:
            return
        self._filtered(
            ["-c", "fetch.negotiationAlgorithm=noop", "fetch", "-q", "--no-tags"]
            + ["--no-write-fetch-head", "--recurse-submodules=no", "--stdin", "origin"],
            filter_spec,
            stdin="".join(f"{oid}\n" for oid in missing).encode(),
        )
        known.update(missing)

    def fetch_paths(
        self, commits: Sequence[str], paths: Sequence[str]
    ) -> dict[tuple[str, str], tuple[str, str]]:
        """(type, id) of each path at each commit; absent pairs have no such path.

        In a ``PATHS`` clone the trees on the way are fetched first: one fetch by id per
        folder level for all commits and paths together, each tree alone (``tree:0``), and
        only those not fetched before (the same tree at many commits comes once).
        """
        if not commits:
            return {}
        roots = self._root_trees(sorted(set(commits)))
        # (commit, path) -> (tree reached so far, the path's remaining segments)
        walking = {
            (commit, path): (roots[commit], path.split("/")) for commit in roots for path in paths
        }
        found: dict[tuple[str, str], tuple[str, str]] = {}
        level = 0  # of the trees in `walking`: 0 is the root
        while walking:
            if self._scope is Scope.PATHS:
                # A commit fetched with ``tree:<depth>`` holds its top levels already.
                self._fetch_objects(
                    [
                        tree
                        for (commit, _), (tree, _) in walking.items()
                        if level >= self._levels.get(commit, 0)
                    ],
                    "tree:0",
                )
            advanced = {}
            for (commit, path), (tree, segments) in walking.items():
                if tree not in self._entries:
                    self._entries[tree] = tree_entries(self.catfile, tree)
                entry = self._entries[tree].get(segments[0])
                if entry is None:
                    continue
                kind, oid = entry
                if len(segments) == 1:
                    found[commit, path] = (kind, oid)
                    if level + 1 < self._levels.get(commit, 0):
                        self._fetched.add(oid)  # a file among the levels its fetch brought
                elif kind == "tree":
                    advanced[commit, path] = (oid, segments[1:])
            walking = advanced
            level += 1
        return found

    def _root_trees(self, commits: list[str]) -> dict[str, str]:
        """The root tree of each commit: one commit's is asked of the running ``cat-file``
        (the tip, on every retry: no process), many commits' of one ``git log``."""
        if len(commits) == 1:
            found = self.catfile.info(f"{commits[0]}^{{tree}}")
            if found is None:
                raise StoreError(f"the cases repo has no commit {commits[0]}")
            return {commits[0]: found[0]}
        wanted = "".join(f"{commit}\n" for commit in commits).encode()
        listed = self.git.run(
            ["log", "--no-walk=unsorted", "--format=%H %T", "--stdin"], input=wanted
        )
        return dict(line.split() for line in listed.text.splitlines())

    def fetch_blobs(self, blob_ids: Sequence[str]) -> None:
        """Fetch these blobs by id in one call (a partial clone has none up front).

        Blobs fetched before are not asked for again: after a rejected push, another writer
        usually changed other cases, and the refetch then costs the branch tip alone.
        """
        if self._scope is not Scope.FULL:
            self._fetch_objects(blob_ids, "blob:none")

    def fetch_history(self, path: str | None = None, since: str | None = None) -> None:
        """Deepen the depth-1 clone to the branch's commit history (no blobs).

        With ``path``, only the commits (from ``since``, an ISO date, when given: plus their
        parents) and, in a ``PATHS`` clone, the trees on the way to ``path`` in each of them:
        what ``git log -- path`` reads. Without, every commit and tree of the history.
        """
        if self._tip is None or self._history == "all" or (since and self._history == since):
            return
        ref = f"refs/heads/{self._branch}"
        args = ["fetch", "-q", "--no-tags", "--no-write-fetch-head"]
        target = ["origin", f"+{ref}:refs/securecase/history"]
        shallow = self.git.run(["rev-parse", "--is-shallow-repository"]).text == "true"
        # Fetch into a separate ref: the tip this store reads stays the one it snapshotted.
        if path is None or self._scope is not Scope.PATHS:
            if shallow:
                self._fetch_history([*args, "--unshallow", *target])
            self._history = "all"
            return
        if since is None:
            if shallow:
                self._fetch_history([*args, "--unshallow", *target], "tree:0")
            self._history = "all"
        elif shallow:
            # A tip older than `since` leaves nothing to fetch (and git refuses the request).
            newer = self.git.run(["log", "-1", f"--since={since}", "--format=%H", self._tip])
            if newer.text:
                self._fetch_history([*args, f"--shallow-since={since}", *target], "tree:0")
                # and the parents of the oldest of them: what those commits changed shows
                self._fetch_history([*args, "--deepen=1", *target], "tree:0")
            self._history = since
        heads = [self._tip] + (["refs/securecase/history"] if self._history_ref else [])
        commits = self.git.run(["rev-list", *heads, "--"]).text
        self.fetch_paths(commits.split(), [path])

    def _fetch_history(self, args: list[str], filter_spec: str | None = None) -> None:
        """One history fetch into refs/securecase/history."""
        if filter_spec is None:
            filter_spec = "blob:none" if self._scope is not Scope.FULL else ""
        result = (
            self._filtered(args, filter_spec, check=False)
            if filter_spec
            else self._net(args, check=False)
        )
        if result.returncode != 0:
            raise self._error(args, result)
        self._history_ref = True

    def begin(self, timeout: float) -> None:
        """No lock: the remote's compare-and-swap on push serializes writers."""

    def end(self) -> None:
        """Nothing to release."""

    def prepare(self, snap: Snapshot, change: Change) -> None:
        """Nobody edits the temporary clone: nothing to protect."""

    def build_dir(self) -> str:
        """The temporary folder (removed on close)."""
        return self._tmp

    def publish(self, old: str | None, built: Built) -> bool:
        """Push without force; False when the remote moved (caller refetches and recomputes)."""
        ref = f"refs/heads/{self._branch}"
        # Neither step may make git fetch what the clone skipped: a thin pack would fetch the
        # old version of each changed file (a raw report, say) to delta against it, and the
        # fast-forward check reads the remote's tip, which after a race is another writer's
        # commit, with every tree. The lease (the remote tip must still be ``old``, checked
        # by the server too) is that check without reading anything: ``built`` descends
        # from ``old``.
        args = ["push", "--porcelain", "--no-verify", "--no-thin"]
        args += [f"--force-with-lease={ref}:{old or ''}", "origin", f"{built.commit}:{ref}"]
        try:
            result = self._net(args, check=False)
        except StoreError as error:  # the server did not answer in time
            raise CasesRepoBusy(error.message, hint=error.hint) from error
        if result.returncode == 0:
            self._tip = built.commit
            return True
        for line in result.text.splitlines():
            if line.startswith("!") and f":{ref}\t" in line:
                reason = line.split("\t")[-1]
                if reason.startswith("[rejected]") or (
                    reason.startswith("[remote rejected]")
                    and any(word in reason for word in _RETRY_REMOTE_REJECTS)
                ):
                    return False
                said = [x.rstrip() for x in result.stderr.splitlines() if x.startswith("remote:")][
                    -10:
                ]
                raise PushRefused(
                    f"the cases repo {self._where} refused the update of {ref}: "
                    + self.git.redact("\n".join([reason, *said])),
                    hint="check the branch protection rules and the token's permissions",
                )
        raise self._error(args, result)

    def after_publish(self, old: str | None, built: Built) -> None:
        """Nothing to sync: the clone has no work tree in use."""

    def obstacle(self) -> str | None:
        """A ref lock in a bare repository on this machine that refuses our pushes, named."""
        if self._bare_dir is None:
            return None
        lock = os.path.join(self._bare_dir, "refs", "heads", f"{self._branch}.lock")
        if not os.path.exists(lock):
            return None
        return f"{describe_lock(lock)} in the bare repository blocks every push to {self._branch}"

    def close(self) -> None:
        """Remove the temporary clone."""
        shutil.rmtree(self._tmp, ignore_errors=True)
