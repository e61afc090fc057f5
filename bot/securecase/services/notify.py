"""Delivering the sweep's message to webhooks, with bounded retries (tenacity).

A webhook URL is a secret (whoever has it can post to the channel): it is kept out of every
``repr``, message and warning; webhooks are named by their position ("webhook #1").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from securecase.domain.sweep import Event
from securecase.render.notice import NoticeFormat, format_for_url, notice_body

if TYPE_CHECKING:
    pass
# requests and tenacity are imported when there is something to send: most sweeps send nothing.

#: Attempts per webhook and message, and the backoff between them (seconds).
ATTEMPTS = 4
FIRST_WAIT = 0.5
MAX_WAIT = 8.0
TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class Webhook:
    """Where to send the message, and in which shape; ``url`` is never shown."""

    url: str = field(repr=False)
    format: NoticeFormat


def webhooks_from_options(urls: Sequence[str], fmt: str | None) -> tuple[Webhook, ...]:
    """One :class:`Webhook` per ``--notify`` URL, shaped by ``--notify-format`` or its host."""
    return tuple(Webhook(url, NoticeFormat(fmt) if fmt else format_for_url(url)) for url in urls)


class _Retry(Exception):
    """A delivery worth trying again (5xx, 429, network); the message names no URL."""


def deliver(
    webhooks: Sequence[Webhook], events: Sequence[Event], *, first_wait: float = FIRST_WAIT
) -> list[str]:
    """Send one message listing ``events`` to each webhook; warnings for those that failed."""
    import tenacity

    warnings = []
    for number, hook in enumerate(webhooks, start=1):
        body = notice_body(events, hook.format)
        try:
            _post(hook.url, body, first_wait)
        except (_Retry, tenacity.RetryError) as exc:
            cause = exc.last_attempt.exception() if isinstance(exc, tenacity.RetryError) else exc
            warnings.append(
                f"webhook #{number}: delivery failed after {ATTEMPTS} attempts ({cause}); "
                "the next sweep sends these events again"
            )
        except _Refused as exc:
            warnings.append(
                f"webhook #{number}: refused the message ({exc}); "
                "the next sweep sends these events again"
            )
    return warnings


class _Refused(Exception):
    """A 4xx answer other than 429: retrying now would not help."""


def _post(url: str, body: dict[str, Any], first_wait: float) -> None:
    import tenacity

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(ATTEMPTS),
        wait=tenacity.wait_exponential(multiplier=first_wait, max=MAX_WAIT),
        retry=tenacity.retry_if_exception_type(_Retry),
        reraise=False,
    )
    for attempt in retrying:
        with attempt:
            _post_once(url, body)


def _post_once(url: str, body: dict[str, Any]) -> None:
    import requests

    try:
        answer = requests.post(url, json=body, timeout=TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        # The exception's text may hold the URL: only its type is shown.
        raise _Retry(f"network error {type(exc).__name__}") from None
    if answer.status_code == 429 or answer.status_code >= 500:
        raise _Retry(f"HTTP {answer.status_code}")
    if answer.status_code >= 300:
        raise _Refused(f"HTTP {answer.status_code}")
