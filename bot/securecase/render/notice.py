"""The sweep's notification message, in the shape each kind of webhook expects.

Slack incoming webhooks take ``{"text": ...}`` (mrkdwn); Microsoft Teams workflow webhooks
take a message with one Adaptive Card attachment; anything else gets plain JSON listing the
events with their ids and kinds.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from securecase.domain.sweep import Event, EventKind


class NoticeFormat(StrEnum):
    """The body a webhook expects."""

    SLACK = "slack"
    TEAMS = "teams"
    JSON = "json"


_HEADINGS = {
    EventKind.CLOSED: "Cases closed",
    EventKind.BLOCKED: "Cases that now block",
    EventKind.SLA_BREACHED: "Findings past their SLA",
    EventKind.EXCEPTION_EXPIRING: "Exceptions expiring within 14 days",
}


def format_for_url(url: str) -> NoticeFormat:
    """Slack for hooks.slack.com, Teams for Power Automate / Logic Apps hosts, else JSON."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "hooks.slack.com":
        return NoticeFormat.SLACK
    if (
        host.endswith((".webhook.office.com", ".logic.azure.com", ".powerplatform.com"))
        or "powerautomate" in host
    ):
        return NoticeFormat.TEAMS
    return NoticeFormat.JSON


def _sections(events: Sequence[Event]) -> list[tuple[str, list[str]]]:
    return [
        (heading, [e.text for e in events if e.kind is kind])
        for kind, heading in _HEADINGS.items()
        if any(e.kind is kind for e in events)
    ]


def headline(events: Sequence[Event]) -> str:
    """One line: how many events of which kinds."""
    parts = [f"{len(lines)} {heading.lower()}" for heading, lines in _sections(events)]
    return "securecase sweep: " + "; ".join(parts)


def notice_body(events: Sequence[Event], fmt: NoticeFormat) -> dict[str, Any]:
    """The JSON body of one message listing ``events``."""
    if fmt is NoticeFormat.SLACK:
        lines = [f"*{headline(events)}*"]
        for heading, texts in _sections(events):
            lines.append(f"*{heading}*")
            lines.extend(f"• {_slack_escape(t)}" for t in texts)
        return {"text": "\n".join(lines)}
    if fmt is NoticeFormat.TEAMS:
        body: list[dict[str, Any]] = [
            {"type": "TextBlock", "text": headline(events), "weight": "Bolder", "wrap": True}
        ]
        for heading, texts in _sections(events):
            body.append({"type": "TextBlock", "text": heading, "weight": "Bolder", "wrap": True})
            body.append(
                {"type": "TextBlock", "text": "\n".join(f"- {t}" for t in texts), "wrap": True}
            )
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": body,
        }
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": card,
                }
            ],
        }
    return {
        "source": "securecase",
        "summary": headline(events),
        "events": [
            {"id": e.id, "kind": e.kind.value, "case_key": e.case_key, "text": e.text}
            for e in events
        ],
    }


def _slack_escape(text: str) -> str:
    """Slack reads ``&``, ``<`` and ``>`` as markup: escape them."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
