"""``securecase sweep``: the scheduled upkeep of the cases repo (see DESIGN.md)."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from securecase.cli.common import (
    cache_option,
    echo_text,
    github_api_url_option,
    github_token_option,
    parse_cache,
    refuse_one_web_url,
    shard_map,
    shards_option,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from securecase.services.artifactfold import ArtifactFoldResult
    from securecase.services.sweep import SweepResult

#: Rows per list in the job summary; ``sweep --output json`` lists everything.
SUMMARY_ROWS = 50
#: ``--retire-after``'s default, in days (``securecase.domain.retirement.RETIRE_AFTER_DAYS``,
#: not imported: the CLI's start-up imports nothing of the services).
RETIRE_AFTER_DEFAULT = 30


class _DaysOrNever(click.ParamType):
    """A number of days (0 or more), or ``never``."""

    name = "days"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == "never":
            return None
        if text.isdigit():
            return int(text)
        self.fail(f"{value!r} is neither a number of days (0 or more) nor 'never'", param, ctx)


@click.command("sweep")
@click.option(
    "--cases-repo",
    envvar="SECURECASE_CASES_REPO",
    default="./security-cases",
    show_default="$SECURECASE_CASES_REPO, else ./security-cases",
    metavar="PATH|URL",
    help="The security-cases git repository: a local path or a git URL.",
)
@shards_option
@click.option("--repo", "repo_glob", metavar="GLOB", help="Only cases of these repositories.")
@click.option("--dry-run", is_flag=True, help="Print what would change; write and send nothing.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--notify",
    "notify_urls",
    multiple=True,
    envvar="SECURECASE_NOTIFY",
    show_envvar=False,
    metavar="URL",
    help="Webhook to send new events to (repeatable; default $SECURECASE_NOTIFY, URLs "
    "separated by whitespace, which keeps them off the command line). A secret: never printed.",
)
@click.option(
    "--notify-format",
    type=click.Choice(["slack", "teams", "json"]),
    help="Message shape for every --notify URL. Default: from the URL's host "
    "(hooks.slack.com: slack; *.webhook.office.com, *.logic.azure.com: teams; else json).",
)
@click.option(
    "--open-issues",
    "issues_repo",
    metavar="ORG/NAME",
    help="Open or update one issue there per case that newly blocks or breaches its SLA; "
    "close it when the case closes.",
)
@github_token_option
@github_api_url_option
@click.option(
    "--github-max-wait",
    envvar="SECURECASE_GITHUB_MAX_WAIT",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait in total for GitHub rate limits and retries.",
)
@click.option(
    "--cases-web-url",
    envvar="SECURECASE_CASES_WEB_URL",
    metavar="URL",
    help="Web page of the cases repo, for links to the case file in check runs.",
)
@click.option(
    "--git-name",
    envvar="SECURECASE_GIT_NAME",
    default="securecase-bot",
    show_default=True,
    help="Author name of the bot's commits.",
)
@click.option(
    "--git-email",
    envvar="SECURECASE_GIT_EMAIL",
    default="securecase-bot@users.noreply.github.com",
    show_default=True,
    help="Author email of the bot's commits.",
)
@click.option(
    "--push-timeout",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Seconds to keep retrying when other runs push to the cases repo at the same time.",
)
@click.option(
    "--queue-dir",
    envvar="SECURECASE_QUEUE_DIR",
    metavar="DIR|off",
    help="Records ingests of this machine queued while the cases repo was busy: pushed first, "
    "in one push (see ingest --queue-dir; env SECURECASE_QUEUE_DIR).",
)
@click.option(
    "--fold-artifacts",
    is_flag=True,
    envvar="SECURECASE_FOLD_ARTIFACTS",
    help="First fold in the records queued on GitHub-hosted runners and kept as workflow "
    "artifacts (securecase-record-*) of every repository with a folder in the cases repo "
    "(or the --repo NAME given): one push, and each artifact deleted once its record landed. "
    "Needs a token with actions: read and write there. Env SECURECASE_FOLD_ARTIFACTS.",
)
@cache_option
@click.option(
    "--prune-raw-after",
    type=click.IntRange(min=0),
    metavar="DAYS",
    help="Remove the raw reports of cases closed at least DAYS days ago "
    "(one commit per case; the cases repo's history keeps them).",
)
@click.option(
    "--retire-after",
    type=_DaysOrNever(),
    envvar="SECURECASE_RETIRE_AFTER",
    default=RETIRE_AFTER_DEFAULT,
    show_default=True,
    metavar="DAYS|never",
    help="Remove from the cases repo's tip the folder of each case CLOSED at least DAYS days "
    "ago and not edited by a person since (one commit per case; history keeps it, and "
    "`cases show`, `cases history` and `report` still find it). Env SECURECASE_RETIRE_AFTER.",
)
def sweep(
    cases_repo: str,
    shards_file: str | None,
    repo_glob: str | None,
    dry_run: bool,
    output: str,
    notify_urls: tuple[str, ...],
    notify_format: str | None,
    issues_repo: str | None,
    github_token: str | None,
    github_api_url: str,
    github_max_wait: float,
    cases_web_url: str | None,
    git_name: str,
    git_email: str,
    push_timeout: float,
    queue_dir: str | None,
    fold_artifacts: bool,
    no_cache: bool,
    prune_raw_after: int | None,
    retire_after: int | None,
) -> None:
    """Scheduled upkeep: close the cases of merged or closed pull requests and deleted branches,
    re-judge open cases under the current policy and today's date, commit one change per case
    (one push), post a check run where a pull request's decision changed, and notify.

    With --shards, every shard of the file in turn, each shard's changes committed to it;
    nothing is written while a case is in more than one shard. Today comes from
    $SECURECASE_NOW (ISO 8601, UTC) when set. Exit code 0 (GitHub and webhook failures are
    warnings), 2 for bad input (also a queued record or a record artifact --fold-artifacts
    cannot read: it is kept and named), 3 when the cases repo cannot be written.
    """
    from securecase.cli.artifacts import artifact_data, artifact_notes, fold_artifacts_into
    from securecase.clock import clock_from_env
    from securecase.github.client import settings_from_options
    from securecase.github.outputs import warning_line
    from securecase.services.notify import webhooks_from_options
    from securecase.services.sweep import SweepRequest
    from securecase.services.sweep import sweep as run_sweep
    from securecase.storage.cachedir import cache_dir
    from securecase.storage.store import GitIdentity

    shards = shard_map(click.get_current_context(), shards_file)
    refuse_one_web_url(shards, cases_web_url)
    for url in notify_urls:
        if not url.startswith(("https://", "http://")):
            raise click.BadParameter("a webhook must be an http(s) URL", param_hint="--notify")
    github = settings_from_options(
        api_url=github_api_url,
        token=github_token,
        app_id=None,
        app_key_file=None,
        app_installation_id=None,
        max_wait=github_max_wait,
    )
    actions = os.environ.get("GITHUB_ACTIONS") == "true"
    folded: tuple[str, ...] = ()
    unread: tuple[str, ...] = ()
    artifacts: list[ArtifactFoldResult] = []
    if fold_artifacts and github is None:
        raise click.UsageError(
            "--fold-artifacts needs a GitHub token (--github-token or $GITHUB_TOKEN) with "
            "actions: read and write on the scanned repositories"
        )
    if not dry_run:
        for location in [s.cases_repo for s in shards.shards] if shards else [cases_repo]:
            notes, broken = _fold_queue(location, queue_dir, git_name, git_email, push_timeout)
            folded += notes
            unread += broken
            if fold_artifacts and github is not None:
                # A repository named outright whose folder does not exist yet belongs to the
                # shard the shard file picks for it (with no shard file: the one cases repo).
                picked = shards.pick(repo_glob) if shards and repo_glob else None
                owns = shards is None or (picked is not None and picked.cases_repo == location)
                artifacts.append(
                    fold_artifacts_into(
                        location,
                        repo_glob if owns else None,
                        repo_glob,
                        github,
                        git_name,
                        git_email,
                        push_timeout,
                    )
                )
    folded += tuple(w for one in artifacts for w in artifact_notes(one))
    with (
        _progress(enabled=not actions and sys.stderr.isatty()) as progress,
        parse_cache(no_cache) as cache,
    ):
        request = SweepRequest(
            cases_repo=cases_repo,
            identity=GitIdentity(git_name, git_email),
            repo_glob=repo_glob,
            dry_run=dry_run,
            webhooks=webhooks_from_options(notify_urls, notify_format),
            issues_repo=issues_repo,
            github=github,
            cases_web_url=cases_web_url,
            push_timeout=push_timeout,
            progress=progress,
            prune_raw_after=prune_raw_after,
            retire_after=retire_after,
            cache_dir=None if no_cache else cache_dir(),
        )
        parts: list[dict[str, Any]] = []
        if shards is None:
            result = run_sweep(request, clock=clock_from_env(os.environ), cache=cache)
        else:
            from securecase.services.shards import sweep_sharded

            sharded = sweep_sharded(shards, request, clock=clock_from_env(os.environ), cache=cache)
            result = sharded.result
            parts = [
                {
                    "name": shard.name,
                    "cases_repo": shard.shown,
                    "changed": len(one.planned),
                    "commits": len(one.commits),
                }
                for shard, one in sharded.parts
            ]
    warnings = [*folded, *result.warnings]
    if actions:
        warnings += _write_actions_files(result, os.environ)
    if output == "json":
        data = sweep_data(result)
        if shards is not None:
            data["shards"] = parts
        if fold_artifacts:
            data["artifacts"] = artifact_data(artifacts)
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        # Case keys hold branch names, which whoever pushes a branch chooses.
        echo_text(sweep_text(result))
        for part in parts:
            echo_text(
                f"shard {part['name']}: {part['changed']} case(s), {part['commits']} commit(s)"
            )
    for warning in warnings:
        click.echo(warning_line(warning, actions=actions), err=True)
    refused = [r for one in artifacts for r in one.refused]
    if refused:
        from securecase.errors import InputError

        # Fail closed: the sweep did its work, but a record someone meant to keep did not land.
        raise InputError(
            f"{len(refused)} record artifact(s) were not folded and are kept: "
            + "; ".join(f"{r.name} of {r.repo}: {r.reason}" for r in refused),
            hint="look at each named artifact; delete it by hand once it is understood "
            "(or let it expire)",
        )
    if unread:
        from securecase.errors import InputError

        # Fail closed here too: a record this version cannot read is kept, not skipped quietly.
        raise InputError(
            f"{len(unread)} queued record(s) cannot be read and stay queued: " + "; ".join(unread),
            hint="look at each named record; remove its folder by hand once it is understood",
        )
    sys.exit(0)


def _fold_queue(
    cases_repo: str, queue_dir: str | None, git_name: str, git_email: str, push_timeout: float
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Push the records waiting in this machine's queue for the cases repo (one push);
    what happened, as warnings, and why the records that cannot be read stay."""
    from securecase.services.ingest import fold_queue
    from securecase.storage.queue import queue_root
    from securecase.storage.store import GitIdentity

    root = queue_root(queue_dir)
    if root is None:
        return (), ()
    folded = fold_queue(
        cases_repo, root, identity=GitIdentity(git_name, git_email), push_timeout=push_timeout
    )
    notes = list(folded.warnings)
    if folded.landed:
        notes.insert(0, f"{len(folded.landed)} queued record(s) of earlier ingests landed")
    if folded.waiting:
        notes.append(f"{folded.waiting} queued record(s) still wait for the cases repo")
    return tuple(notes), folded.unread


def _write_actions_files(result: SweepResult, env: Mapping[str, str]) -> list[str]:
    """Inside GitHub Actions: the step outputs and the job summary; returns warnings."""
    from securecase.github.checks import STEP_SUMMARY_LIMIT, step_summary
    from securecase.github.outputs import append_outputs, append_step_summary

    warnings: list[str] = []
    output_path = env.get("GITHUB_OUTPUT")
    if output_path:
        try:
            append_outputs(output_path, sweep_outputs(result))
        except OSError as exc:
            warnings.append(f"cannot write the step outputs {output_path}: {exc}")
    summary_path = env.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        try:
            used = os.path.getsize(summary_path) if os.path.exists(summary_path) else 0
            # One byte kept for the newline appended to text that lacks one.
            text = step_summary(sweep_markdown(result), room=STEP_SUMMARY_LIMIT - used - 1)
            if text:
                append_step_summary(summary_path, text)
            else:
                warnings.append(f"the job summary {summary_path} is full (1 MiB per step)")
        except OSError as exc:
            warnings.append(f"cannot write the job summary {summary_path}: {exc}")
    return warnings


class _progress:
    """A one-line progress bar on stderr while cases are judged (a no-op when disabled)."""

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: Any = None

    def __enter__(self) -> Callable[[int, int], None] | None:
        if not self._enabled:
            return None

        def update(done: int, total: int) -> None:
            if self._bar is None:
                self._bar = click.progressbar(
                    length=total, label="judging cases", file=sys.stderr
                ).__enter__()
            self._bar.update(1)

        return update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def sweep_data(result: SweepResult) -> dict[str, Any]:
    """The ``sweep --output json`` document (keys fixed by DESIGN.md)."""
    return {
        "closed": [{"case_key": k, "reason": r} for k, r in result.closed],
        "decision_changes": [
            {"case_key": c.case_key, "from": c.before, "to": c.after, "reasons": list(c.reasons)}
            for c in result.decision_changes
        ],
        "sla_breaches": [
            {"case_key": k, "finding": f, "severity": s, "due": d}
            for k, f, s, d in result.sla_breaches
        ],
        "expiring_exceptions": [
            {"id": i, "expires": e, "cases": list(c)} for i, e, c in result.expiring_exceptions
        ],
        "commits": len(result.commits),
        "api_calls": result.api_calls,
        "notified": result.notified,
        "raw_pruned": list(result.pruned),
        "retired": [{"case_key": k, "idle_days": d} for k, d in result.retired],
        "warnings": list(result.warnings),
        "dry_run": result.dry_run,
    }


def sweep_text(result: SweepResult) -> str:
    """A short human summary; with --dry-run, the plan."""
    verb = "would change" if result.dry_run else "changed"
    lines = [f"sweep: {len(result.planned)} case(s) {verb}"]
    lines += [f"  {key}: {'; '.join(what)}" for key, what in result.planned]
    if result.pruned:
        pruned = "would be removed" if result.dry_run else "removed"
        lines.append(f"raw reports {pruned} of {len(result.pruned)} closed case(s):")
        lines += [f"  {key}" for key in result.pruned]
    if result.retired:
        retired = "would leave" if result.dry_run else "left"
        lines.append(
            f"{len(result.retired)} closed case(s) {retired} the tip (history keeps them):"
        )
        lines += [f"  {key} (closed, left alone {days} day(s))" for key, days in result.retired]
    for eid, expires, keys in result.expiring_exceptions:
        lines.append(f"exception {eid} expires {expires} ({len(keys)} case(s))")
    if not result.dry_run:
        lines.append(
            f"commits: {len(result.commits)}, notified: {result.notified}, "
            f"api calls: {result.api_calls}"
        )
    return "\n".join(lines)


def sweep_outputs(result: SweepResult) -> dict[str, str]:
    """The step outputs of ``sweep`` inside GitHub Actions: how many cases changed (or would,
    with a dry run), closed, changed decision, newly breached an SLA; exceptions expiring;
    commits made and the last one; events notified; GitHub API calls; warnings."""
    return {
        "changed": str(len(result.planned)),
        "closed": str(len(result.closed)),
        "retired": str(len(result.retired)),
        "decision_changes": str(len(result.decision_changes)),
        "blocked": str(sum(1 for c in result.decision_changes if c.after == "block")),
        "sla_breaches": str(len(result.sla_breaches)),
        "expiring_exceptions": str(len(result.expiring_exceptions)),
        "commits": str(len(result.commits)),
        "cases_commit": result.commits[-1] if result.commits else "",
        "notified": str(result.notified),
        "api_calls": str(result.api_calls),
        "dry_run": "true" if result.dry_run else "false",
        "warnings": "\n".join(result.warnings),
    }


def sweep_markdown(result: SweepResult) -> str:
    """The job summary of a sweep: the numbers, then what closed, what changed decision, what
    newly passed its SLA, which exceptions expire soon, and the warnings (each list cut at
    ``SUMMARY_ROWS``)."""
    from securecase.render.markdown import code, text

    title = "## securecase sweep" + (
        " (dry run: nothing written or sent)" if result.dry_run else ""
    )
    verb = "would change" if result.dry_run else "changed"
    lines = [
        title,
        "",
        "| | |",
        "|---|---:|",
        f"| Cases {verb} | {len(result.planned)} |",
        f"| Closed | {len(result.closed)} |",
        f"| Retired from the tip | {len(result.retired)} |",
        f"| Decision changes | {len(result.decision_changes)} |",
        f"| Findings newly past SLA | {len(result.sla_breaches)} |",
        f"| Exceptions expiring within 14 days | {len(result.expiring_exceptions)} |",
        f"| Commits | {len(result.commits)} |",
        f"| Events notified | {result.notified} |",
        f"| GitHub API calls | {result.api_calls} |",
    ]
    sections = (
        ("Closed", [f"- {code(key)}: {text(reason)}" for key, reason in result.closed]),
        (
            "Retired from the tip",
            [f"- {code(key)}: left alone {days} day(s)" for key, days in result.retired],
        ),
        (
            "Decision changes",
            [
                f"- {code(c.case_key)}: {text(c.before)} → **{text(c.after)}**"
                + (f" ({text('; '.join(c.reasons))})" if c.reasons else "")
                for c in result.decision_changes
            ],
        ),
        (
            "Newly past SLA",
            [
                f"- {code(key)}: {code(finding)} ({text(severity)}, due {text(due)})"
                for key, finding, severity, due in result.sla_breaches
            ],
        ),
        (
            "Exceptions expiring",
            [
                f"- {code(eid)} expires {text(expires)} ({len(keys)} case(s))"
                for eid, expires, keys in result.expiring_exceptions
            ],
        ),
        ("Warnings", [f"- {text(w)}" for w in result.warnings]),
    )
    for heading, rows in sections:
        if not rows:
            continue
        lines += ["", f"### {heading}", "", *rows[:SUMMARY_ROWS]]
        if len(rows) > SUMMARY_ROWS:
            more = len(rows) - SUMMARY_ROWS
            lines.append(f"- … and {more} more (`securecase sweep --output json` lists all)")
    return "\n".join(lines) + "\n"
