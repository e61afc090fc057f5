"""Remote cases repo: a shallow, partial, temporary clone; push without force; refetch on race.

The clone is ``git init`` + a remote configured in the repository config (its URL without
credentials: a token reaches git only through the environment, see
:func:`~securecase.storage.git.remote_credentials`) + ``fetch --depth 1 --filter=blob:none``
of the default branch.
Only the blobs under the store's ``paths`` are fetched up front (one batched fetch by object
id); other blobs stay on the server and are fetched lazily if something reads them.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from collections.abc import Sequence

from securecase.errors import CasesRepoBusy, PushRefused, StoreError
from securecase.storage.git import Git, GitIdentity, GitResult, redact, remote_credentials
from securecase.storage.locks import describe_lock
from securecase.storage.scratch import run_directory
from securecase.storage.store import Built, Change, Snapshot, _CatFile

_AUTH_HINT = "check the cases repo URL, the network, and the credentials (token or SSH key)"
_RETRY_REMOTE_REJECTS = ("lock", "failed to update ref", "expected", "incorrect old value")


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
    """Commits through a temporary clone of a remote (see the module docstring)."""

    def __init__(
        self, url: str, identity: GitIdentity, paths: Sequence[str] | None, timeout: float
    ) -> None:
        self._tmp = run_directory()
        repo = os.path.join(self._tmp, "repo")
        credentials = remote_credentials(url, os.environ)
        url = credentials.url
        self.git = Git(
            repo, identity=identity, secrets=credentials.secrets, env_config=credentials.config
        )
        self.catfile = _CatFile(self.git)
        self.private_dir: str | None = None  # the clone is gone after this run
        self._paths = None if paths is None else [p.rstrip("/") for p in paths]
        self._timeout = timeout
        self._where = self.git.redact(url)
        self._bare_dir = _local_path(url)
        self._tip: str | None = None
        self._unshallowed = False
        self._fetched: set[str] = set()  # blob ids this clone holds
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
        if self._paths is not None:
            self.git.run(["config", "core.repositoryformatversion", "1"])
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
        """Fetch the branch tip (depth 1) and the blobs under ``paths``."""
        ref = f"refs/heads/{self._branch}"
        args = ["fetch", "-q", "--depth", "1", "--no-tags", "--no-write-fetch-head"]
        if self._paths is not None:
            args.append("--filter=blob:none")
        result = self._net(
            [*args, "origin", f"+{ref}:refs/remotes/origin/{self._branch}"], check=False
        )
        if result.returncode != 0:
            if f"couldn't find remote ref {ref}" in result.stderr:
                self._tip = None  # still empty
                return
            raise self._error(args, result)
        self._tip = self.git.run(["rev-parse", f"refs/remotes/origin/{self._branch}"]).text
        if self._paths:
            listed = self.git.run(
                ["ls-tree", "-r", "-z", "--full-tree", self._tip, "--", *self._paths]
            ).stdout
            wanted = [e.split(b"\t")[0].split()[2] for e in listed.split(b"\0") if b" blob " in e]
            self.fetch_blobs([oid.decode() for oid in wanted])

    def fetch_blobs(self, blob_ids: Sequence[str]) -> None:
        """Fetch these blobs by id in one call (a partial clone has none up front).

        Blobs fetched before are not asked for again: after a rejected push, another writer
        usually changed other cases, and the refetch then costs the branch tip alone.
        """
        missing = sorted(set(blob_ids) - self._fetched)
        if self._paths is None or not missing:
            return  # a full clone already has every blob of the commits it fetched
        self._net(
            ["-c", "fetch.negotiationAlgorithm=noop", "fetch", "-q", "--no-tags"]
            + ["--no-write-fetch-head", "--recurse-submodules=no", "--filter=blob:none"]
            + ["--stdin", "origin"],
            stdin="".join(f"{oid}\n" for oid in missing).encode(),
        )
        self._fetched.update(missing)

    def fetch_history(self) -> None:
        """Deepen the depth-1 clone to the branch's full commit history (blobs stay remote)."""
        if self._tip is None or self._unshallowed:
            return
        # A depth-1 fetch of a one-commit branch is already complete (and --unshallow refuses).
        if self.git.run(["rev-parse", "--is-shallow-repository"]).text != "true":
            self._unshallowed = True
            return
        args = ["fetch", "-q", "--unshallow", "--no-tags", "--no-write-fetch-head"]
        if self._paths is not None:
            args.append("--filter=blob:none")
        ref = f"refs/heads/{self._branch}"
        # Fetch into a separate ref: the tip this store reads stays the one it snapshotted.
        self._net([*args, "origin", f"+{ref}:refs/securecase/history"])
        self._unshallowed = True

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
        args = ["push", "--porcelain", "--no-verify", "origin", f"{built.commit}:{ref}"]
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
