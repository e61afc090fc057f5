"""One exception hierarchy for everything securecase reports to a user.

Each error carries a message (what went wrong, with a location when the input has one) and an
optional hint (what to do about it). The CLI renders them once and picks the exit code from
``exit_code``: 2 for bad usage or bad input, 3 for infrastructure failures.
"""

from __future__ import annotations

from collections.abc import Sequence


class SecurecaseError(Exception):
    """Base class: a failure the user can understand and act on."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(SecurecaseError):
    """The command line does not make sense (missing subject, conflicting flags...)."""


class InputError(SecurecaseError):
    """A file the user gave us cannot be used; ``problems`` lists every located problem."""

    def __init__(
        self, message: str, *, problems: Sequence[str] = (), hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.problems = tuple(problems)


class ReportError(InputError):
    """A scanner report is unreadable, of an unknown format, or malformed."""


class PolicyError(InputError):
    """The policy file is not valid YAML, fails its schema, or is semantically wrong."""


class CaseFileError(InputError):
    """A case file in the cases repo is broken (usually by a hand edit); never overwritten."""


class StoreError(SecurecaseError):
    """The cases repository could not be read or written (git, network, lock, push race)."""

    exit_code = 3


class CasesRepoBusy(StoreError):
    """The cases repo did not take a change that was ready: its server refused or did not
    answer the push in time, or other writers kept winning until the timeout. A run that
    decided keeps its record in the queue instead (see storage.queue)."""


class PushRefused(CasesRepoBusy):
    """The cases repo's server refused a push outright (a hook, a rule, a limit): nothing of
    it landed, unlike a push that timed out."""


class GitHubError(SecurecaseError):
    """A GitHub API call failed; ``kind`` says how, so callers can pick a fallback.

    Messages never contain a token: the adapter builds them from the HTTP status and GitHub's
    own error message only.
    """

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        #: One of ``auth`` (401), ``forbidden`` (403/404 without a rate limit), ``rate_limit``,
        #: ``server`` (5xx), ``network``, ``invalid`` (422 and other 4xx).
        self.kind = kind
        self.status = status
