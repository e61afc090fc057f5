"""Whether a SARIF log says its tool ran to completion, and which run category it belongs to.

A run did not complete when (SARIF 2.1.0 §3.14.23, §3.20.14, §3.20.21-22): its ``results`` are
absent or null, an invocation has ``executionSuccessful: false``, or an invocation carries a
``toolExecutionNotifications`` / ``toolConfigurationNotifications`` entry of level ``error``
(bandit on a mistyped path, semgrep with an invalid root, a file the parser could not read).
Notifications of level ``warning`` (SARIF's default level), ``note`` or ``none`` do not: the
tool says it carried on, as semgrep does when it recovers from a syntax error and still
reports the file's findings.
"""

from __future__ import annotations

from typing import Any

from securecase.scanners.jsonload import Problems, json_path, short_repr, type_name
from securecase.scanners.sarif_fields import Where

#: Reasons kept per report; the rest are counted in one last reason.
REASON_LIMIT = 10
#: Characters of a tool's message quoted in a reason.
MESSAGE_LIMIT = 200
_NOTIFICATION_KEYS = ("toolExecutionNotifications", "toolConfigurationNotifications")
_LEVELS = frozenset({"none", "note", "warning", "error"})


def incomplete_reasons(runs: list[Any], problems: Problems) -> tuple[str, ...]:
    """Why the log's runs did not complete, each reason led by its JSON path; ill-typed
    invocation fields are ``problems`` (the log is then refused)."""
    reasons: list[str] = []
    for index, run in enumerate(runs):
        if not isinstance(run, dict):
            continue  # reported by the run reader
        where: Where = ("runs", index)
        if run.get("results") is None:
            reasons.append(
                f"{json_path(*where, 'results')}: absent: the tool did not run to completion"
            )
        invocations = run.get("invocations")
        if invocations is None:
            continue
        if not isinstance(invocations, list):
            problems.add(
                (*where, "invocations"), f"expected an array, got {type_name(invocations)}"
            )
            continue
        for i_index, invocation in enumerate(invocations):
            i_where: Where = (*where, "invocations", i_index)
            if not isinstance(invocation, dict):
                problems.add(i_where, f"expected an object, got {type_name(invocation)}")
                continue
            reasons.extend(_invocation(invocation, i_where, problems))
    if len(reasons) > REASON_LIMIT:
        more = len(reasons) - (REASON_LIMIT - 1)
        reasons = [*reasons[: REASON_LIMIT - 1], f"... and {more} more"]
    return tuple(reasons)


def _invocation(invocation: dict[str, Any], where: Where, problems: Problems) -> list[str]:
    reasons: list[str] = []
    success = invocation.get("executionSuccessful")
    if success is not None and type(success) is not bool:
        problems.add(
            (*where, "executionSuccessful"), f"expected a boolean, got {type_name(success)}"
        )
    elif success is False:
        details = [
            f"{key} {short_repr(invocation[key], 80)}"
            for key in ("exitCode", "exitCodeDescription", "exitSignalName")
            if isinstance(invocation.get(key), int | str) and not isinstance(invocation[key], bool)
        ]
        said = f" ({', '.join(details)})" if details else ""
        reasons.append(f"{json_path(*where, 'executionSuccessful')}: false{said}")
    for key in _NOTIFICATION_KEYS:
        notifications = invocation.get(key)
        if notifications is None:
            continue
        if not isinstance(notifications, list):
            problems.add((*where, key), f"expected an array, got {type_name(notifications)}")
            continue
        for n_index, notification in enumerate(notifications):
            n_where: Where = (*where, key, n_index)
            if not isinstance(notification, dict):
                problems.add(n_where, f"expected an object, got {type_name(notification)}")
                continue
            level = notification.get("level", "warning")
            if level not in _LEVELS:
                problems.add(
                    (*n_where, "level"),
                    f"expected one of error, warning, note, none, got {short_repr(level)}",
                )
                continue
            if level == "error":
                reasons.append(f"{json_path(*n_where)}: error: {_notification_text(notification)}")
    return reasons


def _notification_text(notification: dict[str, Any]) -> str:
    """The tool's message, cut, plus the file it names (e.g. the path that does not exist)."""
    message = notification.get("message")
    text = message.get("text") if isinstance(message, dict) else None
    said = " ".join(text.split()) if isinstance(text, str) else "(no message)"
    if len(said) > MESSAGE_LIMIT:
        said = said[: MESSAGE_LIMIT - 1] + "…"
    uri = _first_uri(notification)
    return f"{said} ({short_repr(uri, 120)})" if uri else said


def _first_uri(notification: dict[str, Any]) -> str | None:
    locations = notification.get("locations")
    first = locations[0] if isinstance(locations, list) and locations else None
    physical = first.get("physicalLocation") if isinstance(first, dict) else None
    artifact = physical.get("artifactLocation") if isinstance(physical, dict) else None
    uri = artifact.get("uri") if isinstance(artifact, dict) else None
    return uri if isinstance(uri, str) and uri else None


def categories(runs: list[Any]) -> tuple[str, ...]:
    """The distinct run categories of the log, in order: the part of
    ``automationDetails.id`` before its last ``/`` (SARIF §3.17.4; GitHub's upload ``category``
    ends up there). An id without ``/`` names one run instance only, which changes every run,
    so it is no category."""
    found: list[str] = []
    for run in runs:
        details = run.get("automationDetails") if isinstance(run, dict) else None
        ident = details.get("id") if isinstance(details, dict) else None
        if not isinstance(ident, str) or "/" not in ident:
            continue
        category = ident[: ident.rindex("/")].strip("/")
        if category and len(category) <= 200 and category not in found:
            found.append(category)
    return tuple(found)
