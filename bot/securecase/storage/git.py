"""Running git: a clean environment, an explicit identity, no user hooks, redacted errors.

Every git process securecase starts goes through :class:`Git`. Its environment drops every
inherited ``GIT_*`` variable (except the few transport settings listed in ``_PASSTHROUGH``),
ignores system and global git configuration, never prompts, speaks C locale, and disables
hooks, signing, automatic gc and fsmonitor. Failures become :class:`StoreError` whose message
shows the command and git's stderr with credentials removed.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import shlex
import signal
import subprocess
import threading
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from securecase.errors import StoreError

__all__ = [
    "DEFAULT_IDENTITY",
    "Git",
    "GitIdentity",
    "GitResult",
    "RemoteCredentials",
    "remote_credentials",
    "redact",
    "url_secrets",
]


@dataclass(frozen=True)
class GitIdentity:
    """Author and committer of the commits securecase makes."""

    name: str
    email: str


DEFAULT_IDENTITY = GitIdentity("securecase-bot", "securecase-bot@users.noreply.github.com")

# Inherited GIT_* variables kept on purpose: how to reach and trust a remote, nothing that
# changes which repository, index, objects or config git uses.
_PASSTHROUGH = frozenset(
    {"GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH"}
)
_DROPPED = frozenset({"SSH_ASKPASS"})  # git falls back to it for HTTP passwords: no prompts

# Configuration forced on every command (command-line scope beats the repository's own).
_FORCED_CONFIG = (
    ("core.hooksPath", os.devnull),
    ("core.fsmonitor", "false"),
    ("core.quotePath", "false"),
    ("commit.gpgSign", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("fetch.writeCommitGraph", "false"),
    ("init.defaultBranch", "main"),
    ("advice.detachedHead", "false"),
    ("transfer.credentialsInUrl", "allow"),
    ("credential.helper", ""),
)

_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s]*@")
_AUTH_HEADER = re.compile(r"(?i)(authorization\s*[:=]\s*)(?:(?:basic|bearer|token)\s+)?\S+")
_EXTRAHEADER = re.compile(r"(?i)(extraheader\s*[=:\s]\s*)[^\n]*")
_MIN_SECRET_LEN = 4


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove credentials from ``text``: URL user-info, auth headers and known secrets."""
    for secret in sorted({s for s in secrets if len(s) >= _MIN_SECRET_LEN}, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _URL_USERINFO.sub(r"\1***@", text)
    text = _AUTH_HEADER.sub(r"\1***", text)
    return _EXTRAHEADER.sub(r"\1***", text)


def url_secrets(location: str) -> tuple[str, ...]:
    """The credential strings embedded in a remote URL (password, or a token used as user)."""
    match = re.match(r"(?i)^[a-z][a-z0-9+.-]*://([^/\s]*)@", location)
    if not match:
        return ()
    userinfo = match.group(1)
    user, sep, password = userinfo.partition(":")
    raw = [password] if sep else [user]
    if sep and location.lower().startswith(("http://", "https://")):
        raw.append(user)  # some hosts take the token as the user name
    found: set[str] = set()
    for value in raw:
        if value:
            found.update({value, urllib.parse.unquote(value), urllib.parse.quote(value, safe="")})
    return tuple(sorted(found))


#: Environment variable holding a token for an https cases repo (the Action sets it).
CASES_TOKEN_ENV = "SECURECASE_CASES_TOKEN"


@dataclass(frozen=True)
class RemoteCredentials:
    """A remote URL without credentials, and what git needs to authenticate to it.

    ``config`` pairs are meant for :class:`Git`'s ``env_config`` (the process environment);
    ``secrets`` are every form of the credential, for redaction.
    """

    url: str
    config: tuple[tuple[str, str], ...]
    secrets: tuple[str, ...]


def remote_credentials(location: str, environ: Mapping[str, str]) -> RemoteCredentials:
    """Split credentials off an http(s) ``location`` and add ``$SECURECASE_CASES_TOKEN``.

    User-info in the URL (``https://user:token@host/...``) or the token variable become an
    ``Authorization`` header scoped to the URL, passed to git through its environment, so no
    credential reaches a command line, ``.git/config`` or a file a killed run leaves behind.
    Other URLs (ssh, file, paths) are returned as they are.
    """
    parts = urllib.parse.urlsplit(location)
    if parts.scheme.lower() not in ("http", "https"):
        return RemoteCredentials(location, (), url_secrets(location))
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = environ.get(CASES_TOKEN_ENV, "")
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    if ":" in (parts.hostname or ""):
        host = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port is not None else "")
    clean = urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
    if token:
        user, password = "x-access-token", token
    if not user and not password:
        return RemoteCredentials(clean, (), ())
    basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    header = f"Authorization: Basic {basic}"
    secrets = {basic, *(s for s in (password, user) if s and s != "x-access-token")}
    secrets.update(url_secrets(location))
    return RemoteCredentials(
        clean, ((f"http.{clean}.extraHeader", header),), tuple(sorted(secrets))
    )


def _owned_by_us(cwd: str) -> bool:
    """True when git's ownership check cannot fail here, so safe.directory is not needed."""
    uid = os.geteuid()
    for path in (cwd, os.path.join(cwd, ".git")):
        try:
            if os.stat(path).st_uid != uid:
                return False
        except FileNotFoundError:
            continue  # not there (yet): git init creates it as ours
        except OSError:
            return False
    return True


@functools.cache
def _user_safe_directories() -> tuple[str, ...]:
    """``safe.directory`` entries from the user's system/global config, to keep honouring them.

    securecase ignores system and global config, but ``safe.directory`` is the user's explicit
    trust decision about repositories owned by someone else (CI containers rely on it).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k not in _DROPPED}
    env.update({"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"})
    try:
        proc = subprocess.run(
            ["git", "config", "--show-scope", "--get-all", "safe.directory"],
            cwd="/",
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    values = []
    for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
        scope, _, value = line.partition("\t")
        if scope in ("system", "global"):
            values.append(value)
    return tuple(values)


def _base_env(identity: GitIdentity) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if (not key.startswith("GIT_") or key in _PASSTHROUGH) and key not in _DROPPED
    }
    env.update(
        {
            "LC_ALL": "C",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_LITERAL_PATHSPECS": "1",
            "GIT_OPTIONAL_LOCKS": "0",
            "GIT_AUTHOR_NAME": identity.name,
            "GIT_AUTHOR_EMAIL": identity.email,
            "GIT_COMMITTER_NAME": identity.name,
            "GIT_COMMITTER_EMAIL": identity.email,
        }
    )
    if "GIT_SSH" not in env and "GIT_SSH_COMMAND" not in env:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return env


@dataclass(frozen=True)
class GitResult:
    """What a finished git command produced (stderr already redacted)."""

    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        """stdout decoded, without the trailing newline."""
        return self.stdout.decode("utf-8", "surrogateescape").rstrip("\n")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ask git to stop (SIGTERM lets it remove its lock files), then force it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Git:
    """Runs git commands in one directory with securecase's environment and configuration."""

    def __init__(
        self,
        cwd: str,
        *,
        identity: GitIdentity = DEFAULT_IDENTITY,
        secrets: Iterable[str] = (),
        env_config: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.cwd = cwd
        self.secrets = tuple(secrets)
        self.env = _base_env(identity)
        # Settings that hold credentials go to git through its environment
        # (GIT_CONFIG_COUNT): never on a command line, never in a config file.
        self.env["GIT_CONFIG_COUNT"] = str(len(env_config))
        for n, (key, value) in enumerate(env_config):
            self.env[f"GIT_CONFIG_KEY_{n}"] = key
            self.env[f"GIT_CONFIG_VALUE_{n}"] = value
        self.inherit_fds: tuple[int, ...] = ()  # e.g. a held lock, kept by children that outlive us
        config = list(_FORCED_CONFIG)
        if not _owned_by_us(cwd):
            config += [("safe.directory", value) for value in _user_safe_directories()]
        self.config_args = [arg for key, value in config for arg in ("-c", f"{key}={value}")]

    def redact(self, text: str) -> str:
        """:func:`redact` with this runner's known secrets."""
        return redact(text, self.secrets)

    def describe(self, args: Sequence[str]) -> str:
        """The command line as shown to users, credentials removed."""
        return self.redact(shlex.join(["git", *args]))

    def argv(self, args: Sequence[str]) -> list[str]:
        """The full argv for ``git args``."""
        return ["git", *self.config_args, *args]

    def popen(
        self,
        args: Sequence[str],
        *,
        stderr: IO[bytes] | int,
        stdin: IO[bytes] | int = subprocess.PIPE,
        inherit: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start a git process with its output on a pipe, in its own session.

        ``inherit`` passes it ``inherit_fds`` as :meth:`run` does: for a short task done under
        a lock, which must stay held should this process be killed. A long-lived helper (one
        that outlives a locked step) must not, or it would hold the lock after the step ends.
        """
        try:
            return subprocess.Popen(
                self.argv(args),
                cwd=self.cwd,
                env=self.env,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
                pass_fds=self.inherit_fds if inherit else (),
            )
        except OSError as exc:
            raise StoreError(f"cannot run git: {exc}", hint="install git 2.39 or newer") from exc

    def run(
        self,
        args: Sequence[str],
        *,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        check: bool = True,
        hint: str | None = None,
    ) -> GitResult:
        """Run ``git args``; raise :class:`StoreError` on failure when ``check``.

        The child runs in its own session so a signal sent to our process group cannot kill it
        half-way through writing a ref or an index; on our own interruption it gets SIGTERM,
        which git handles by removing its lock files.
        """
        full_env = self.env if env is None else {**self.env, **env}
        proc = self._start(args, full_env, piped_input=input is not None)
        with proc:
            try:
                out, err = proc.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                _stop(proc)
                raise StoreError(
                    f"{self.describe(args)} did not finish within {timeout:.0f}s",
                    hint="check the network and the remote's availability",
                ) from None
            except BaseException:
                _stop(proc)
                raise
        result = GitResult(proc.returncode, out, self.redact(err.decode("utf-8", "replace")))
        if check and result.returncode != 0:
            raise self.error(args, result, hint=hint)
        return result

    def _start(
        self, args: Sequence[str], env: Mapping[str, str], *, piped_input: bool
    ) -> subprocess.Popen[bytes]:
        # In its own session: a signal sent to our process group cannot kill git half-way
        # through writing a ref or an index (see run).
        try:
            return subprocess.Popen(
                self.argv(args),
                cwd=self.cwd,
                env=env,
                stdin=subprocess.PIPE if piped_input else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                pass_fds=self.inherit_fds,
            )
        except OSError as exc:
            raise StoreError(f"cannot run git: {exc}", hint="install git 2.39 or newer") from exc

    def run_until(
        self,
        args: Sequence[str],
        marker: str,
        *,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> tuple[GitResult, bool]:
        """Run ``git args`` as :meth:`run` does (unchecked), but stop it as soon as a line of
        its stderr holds ``marker``: the result, and whether it was stopped so.

        For what git announces before doing it, e.g. a fetch about to download everything.
        """
        proc = self._start(args, self.env, piped_input=input is not None)
        late: list[bool] = []

        def too_late() -> None:
            late.append(True)
            _stop(proc)

        timer = threading.Timer(timeout or 0, too_late)
        output: list[bytes] = []
        drain = threading.Thread(target=lambda: output.append(proc.stdout.read()))  # type: ignore[union-attr]
        said: list[bytes] = []
        stopped = False
        with proc:
            try:
                if timeout:
                    timer.start()
                drain.start()
                if proc.stdin is not None:
                    proc.stdin.write(input or b"")
                    proc.stdin.close()
                for line in proc.stderr:  # type: ignore[union-attr]
                    said.append(line)
                    if marker.encode() in line:
                        stopped = True
                        _stop(proc)
                        break
                proc.wait()
                drain.join()
            except BaseException:
                _stop(proc)
                raise
            finally:
                timer.cancel()
        if late:
            raise StoreError(
                f"{self.describe(args)} did not finish within {timeout:.0f}s",
                hint="check the network and the remote's availability",
            )
        text = self.redact(b"".join(said).decode("utf-8", "replace"))
        return GitResult(proc.returncode, b"".join(output), text), stopped

    def error(
        self, args: Sequence[str], result: GitResult, *, hint: str | None = None
    ) -> StoreError:
        """A :class:`StoreError` describing a failed command (redacted)."""
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()][-15:]
        detail = "\n".join(lines) or "(no output)"
        message = f"{self.describe(args)} failed (exit {result.returncode}): {detail}"
        return StoreError(message, hint=None if hint is None else self.redact(hint))
