"""What GitHub Actions reads from a step: the job summary, the step outputs, warning lines."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping

from securecase.domain.outcome import IngestResult, new_count, recorded_state
from securecase.render.phrases import no_rule_note


def append_step_summary(path: str, markdown: str) -> None:
    """Append Markdown to ``$GITHUB_STEP_SUMMARY`` (raises OSError)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(markdown if markdown.endswith("\n") else markdown + "\n")


def append_outputs(path: str, values: Mapping[str, str]) -> None:
    """Append ``name=value`` lines to ``$GITHUB_OUTPUT``; multi-line values use a delimiter."""
    lines = []
    for name, value in values.items():
        if "\n" in value or "\r" in value:
            # A random delimiter cannot occur as a line of the value.
            delimiter = f"securecase_{secrets.token_hex(16)}"
            lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            lines.append(f"{name}={value}\n")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(lines))


def ingest_outputs(result: IngestResult, *, channel: str, case_url: str | None) -> dict[str, str]:
    """The step outputs of ``ingest``: decision, gate, counts, where the case is, and where the
    result was published (``published_to``).

    ``new`` counts active findings absent from the target branch's case (the summary's new
    row), ``appeared`` and ``fixed`` the changes since the case's last scan. ``rules_applied``
    lists the rules that judged the subject; when it is empty ``note`` says the pass is a
    default.
    """
    counts = result.case.counts
    values = {
        "decision": result.decision.decision,
        "gate": "true" if result.decision.gate else "false",
        "mode": result.decision.mode.value,
        "case_key": result.case.key,
        "case_path": result.case_path,
        "cases_commit": result.cases_commit or "",
        "recorded": recorded_state(result),
        # A queued record's entry id and folder: on a GitHub-hosted runner the Action uploads
        # that folder as the artifact securecase-record-<queued> (sweep --fold-artifacts).
        "queued": result.queued or "",
        "queued_path": result.queued_folder or "",
        "case_url": case_url or "",
        "counts": json.dumps(counts, separators=(",", ":")),
        "new": str(new_count(result)),
        "appeared": str(len(result.appeared)),
        "fixed": str(len(result.fixed)),
        "published_to": channel,
        # Empty when no rule judged the subject: a pass by default, which `note` spells out.
        "rules_applied": " ".join(result.decision.applied_rules),
        "note": no_rule_note(result) or "",
        "warnings": "\n".join(result.warnings),
    }
    values.update({name: str(n) for name, n in counts.items()})
    return values


def guard_commands(text: str) -> str:
    """Text with scanner-controlled parts, made safe to print in an Actions log.

    File paths and titles come from the scanned code (a file name may hold a newline), and a
    line of the log that starts with ``::`` is a workflow command (``::add-mask::``,
    ``::error``, ``::set-output``). Workflow commands are stopped around the text with a
    random token, which the text cannot know, then resumed.
    """
    token = f"securecase-{secrets.token_hex(16)}"
    return f"::stop-commands::{token}\n{text}\n::{token}::"


def warning_line(message: str, *, actions: bool) -> str:
    """One warning for stderr: a ``::warning`` workflow command inside Actions, else plain."""
    if actions:
        # A workflow command shows as a warning annotation on the run; escaped so a message
        # cannot end the command early or inject another one.
        escaped = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return f"::warning title=securecase::{escaped}"
    return f"securecase: warning: {message}"
