"""The ``securecase`` command line: parse options, call the core, render, pick the exit code.

Exit codes: 0 pass (or ``ci`` mode), 1 the gate blocks, 2 bad usage or bad input,
3 infrastructure failure (the cases repo could not be read or written).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from securecase import __version__
from securecase.cli.common import (
    cache_option,
    cases_repo_option,
    github_api_url_option,
    github_token_option,
    parse_cache,
    shard_map,
    shards_option,
)
from securecase.cli.common import clock_from_env as _clock
from securecase.cli.common import echo_text as _echo_text
from securecase.cli.common import emit_json as _emit_json
from securecase.errors import InputError, SecurecaseError
from securecase.limits import MAX_FINDINGS, MAX_REPORT_BYTES

if TYPE_CHECKING:
    from datetime import datetime

    from securecase.domain.outcome import IngestResult
    from securecase.domain.shards import ShardMap
    from securecase.github.client import GitHubSettings


EXIT_PASS, EXIT_BLOCK, EXIT_INPUT, EXIT_INFRA = 0, 1, 2, 3


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="securecase")
@click.option("--verbose", is_flag=True, help="Show a traceback for errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Turn scanner reports into security cases in a git repository, gated by a YAML policy."""
    ctx.obj = {"verbose": verbose}


@cli.command()
@click.argument("reports", nargs=-1, required=True, type=click.Path(path_type=Path))
@cases_repo_option
@shards_option
@click.option(
    "--repo",
    "repo",
    metavar="ORG/NAME",
    help="The scanned repository (required outside GitHub Actions; inside, every subject "
    "option defaults from the environment and the event payload).",
)
@click.option("--pr", type=int, metavar="N", help="Pull request number (the subject is the PR).")
@click.option("--branch", metavar="NAME", help="Branch (the subject, or the PR's head branch).")
@click.option("--target-branch", metavar="NAME", help="The branch a pull request merges into.")
@click.option("--commit", metavar="SHA", help="The scanned commit.")
@click.option(
    "--commit-time",
    metavar="ISO8601",
    help="When the scanned commit was made; orders late scans (a late older commit never "
    "rolls the case back).",
)
@click.option("--run-url", metavar="URL", help="Link to the CI run that scanned.")
@click.option("--image", metavar="NAME:TAG", help="The scanned container image.")
@click.option("--image-digest", metavar="DIGEST", help="The scanned image digest (sha256:...).")
@click.option(
    "--provider",
    type=click.Choice(["github", "gitlab", "generic"]),
    default="github",
    show_default=True,
    help="Where the scanned repository is hosted (part of the case key).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "trivy", "sarif", "zap"]),
    default="auto",
    show_default=True,
    help="Report format (applies to every report); auto detects each from its content: "
    "Trivy JSON, SARIF 2.1.0, OWASP ZAP JSON or XML.",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="NAME",
    help="Slot name of a report in the case (once per report, in order). "
    "Default: derived from the report, e.g. trivy-image.",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(path_type=Path),
    help="Policy file. Default: policy.yaml at the cases repo root, else the built-in default.",
)
@click.option("--mode", type=click.Choice(["ci", "pr_gate"]), help="Override the policy's mode.")
@click.option(
    "--on-incomplete",
    type=click.Choice(["warn", "fail"]),
    default="warn",
    show_default=True,
    envvar="SECURECASE_ON_INCOMPLETE",
    help="A report whose scanner says the scan did not complete is recorded either way (its "
    "earlier findings stay open); warn prints a warning, fail then exits 2 "
    "(env SECURECASE_ON_INCOMPLETE).",
)
@click.option(
    "--max-report-bytes",
    type=click.IntRange(min=1),
    default=MAX_REPORT_BYTES,
    show_default=True,
    help="Refuse a report file larger than this (its raw copy is committed; GitHub refuses "
    "files above 100 MB).",
)
@click.option(
    "--max-findings",
    type=click.IntRange(min=1),
    default=MAX_FINDINGS,
    show_default=True,
    help="Refuse reports, or a case, holding more open findings than this.",
)
@click.option(
    "--output",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
)
@click.option(
    "--git-name",
    envvar="SECURECASE_GIT_NAME",
    default="securecase-bot",
    show_default=True,
    help="Author name of the bot's commits (env SECURECASE_GIT_NAME).",
)
@click.option(
    "--git-email",
    envvar="SECURECASE_GIT_EMAIL",
    default="securecase-bot@users.noreply.github.com",
    show_default=True,
    help="Author email of the bot's commits (env SECURECASE_GIT_EMAIL).",
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
    help="Where a record waits when the cases repo cannot take it (push refused, push budget "
    "spent, --push-timeout passed): the decision is reported and the exit code follows the "
    "gate; the next ingest or sweep of the cases repo on this machine pushes it. Default: "
    "queue/ in the cache directory, none on GitHub-hosted runners; off: exit 3 instead "
    "(env SECURECASE_QUEUE_DIR).",
)
@click.option(
    "--report",
    "publish_to",
    type=click.Choice(["github", "none"]),
    help="Post the result to GitHub as a check run (falling back to a commit status, then to "
    "the job summary only). Default: github when credentials and the repo are known.",
)
@github_token_option
@github_api_url_option
@click.option(
    "--github-app-id",
    envvar="SECURECASE_GITHUB_APP_ID",
    metavar="ID",
    help="Authenticate as this GitHub App (env SECURECASE_GITHUB_APP_ID); needs the key file "
    "and the installation id.",
)
@click.option(
    "--github-app-key-file",
    envvar="SECURECASE_GITHUB_APP_KEY_FILE",
    type=click.Path(path_type=Path),
    metavar="PEM",
    help="The GitHub App's private key file (env SECURECASE_GITHUB_APP_KEY_FILE).",
)
@click.option(
    "--github-app-installation-id",
    envvar="SECURECASE_GITHUB_APP_INSTALLATION_ID",
    type=click.IntRange(min=1),
    metavar="ID",
    help="The App's installation id on the scanned repository's owner "
    "(env SECURECASE_GITHUB_APP_INSTALLATION_ID).",
)
@click.option(
    "--github-max-wait",
    envvar="SECURECASE_GITHUB_MAX_WAIT",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait in total for GitHub rate limits and retries before giving up "
    "(env SECURECASE_GITHUB_MAX_WAIT).",
)
@click.option(
    "--comment",
    type=click.Choice(["never", "on-block", "always"]),
    default="never",
    show_default=True,
    help="Sticky pull-request comment with the summary: one per pull request, edited on each "
    "push; when the PR passes, deleted (on-block) or edited to say so (always).",
)
@click.option(
    "--from-workflow-run",
    is_flag=True,
    help="In a workflow_run job: ingest reports an untrusted pull_request run uploaded (fork "
    "and Dependabot PRs). The PR, head commit and target branch come from the event and the "
    "API, never from the reports.",
)
@click.option(
    "--cases-web-url",
    envvar="SECURECASE_CASES_WEB_URL",
    metavar="URL",
    help="Web page of the cases repo (https://HOST/OWNER/NAME) for links to the case file. "
    "Default: derived from a GitHub --cases-repo URL; none for local paths.",
)
@click.option(
    "--source-root",
    envvar="GITHUB_WORKSPACE",
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="The checkout the scanners ran in: its root is cut from absolute paths, and the "
    "flagged line of a result without a snippet is read from it. Default $GITHUB_WORKSPACE, "
    "else the current directory when every file the reports name is under it.",
)
def ingest(
    reports: tuple[Path, ...],
    cases_repo: str,
    shards_file: str | None,
    repo: str,
    pr: int | None,
    branch: str | None,
    target_branch: str | None,
    commit: str | None,
    commit_time: str | None,
    run_url: str | None,
    image: str | None,
    image_digest: str | None,
    provider: str,
    fmt: str,
    sources: tuple[str, ...],
    policy_file: Path | None,
    mode: str | None,
    on_incomplete: str,
    max_report_bytes: int,
    max_findings: int,
    output: str,
    git_name: str,
    git_email: str,
    push_timeout: float,
    queue_dir: str | None,
    publish_to: str | None,
    github_token: str | None,
    github_api_url: str,
    github_app_id: str | None,
    github_app_key_file: Path | None,
    github_app_installation_id: int | None,
    github_max_wait: float,
    comment: str,
    from_workflow_run: bool,
    cases_web_url: str | None,
    source_root: Path | None,
) -> None:
    """Ingest one or more reports into one case, in one commit, and apply the policy.

    Exit code 0 when the policy passes (or in ci mode), 1 when it blocks, 2 for bad input,
    3 when the cases repo cannot be read, or cannot be written and no queue keeps the record
    (a queued record is a warning: the exit code follows the gate). The current time
    (exception expiry, finding ages) comes from $SECURECASE_NOW (ISO 8601, UTC) when set,
    else the system clock.
    Publishing to GitHub happens after the case is committed; a publishing failure is a
    warning and never changes the exit code. With --shards, the case goes to the shard that
    takes the repository (exit 2 when none does).
    """
    from securecase.domain.findings import ReportFormat
    from securecase.domain.policy import Mode
    from securecase.domain.subjects import make_subject
    from securecase.github.actions import SubjectFlags, resolve_subject
    from securecase.render import text as render
    from securecase.services.ingest import IngestRequest
    from securecase.services.ingest import ingest as run_ingest
    from securecase.storage.queue import queue_root
    from securecase.storage.store import GitIdentity

    shards = shard_map(click.get_current_context(), shards_file)
    given = SubjectFlags(repo, pr, branch, target_branch, commit, run_url)
    if from_workflow_run:
        from securecase.github.client import settings_from_options
        from securecase.github.handoff import subject_from_workflow_run

        resolved = subject_from_workflow_run(
            given,
            settings_from_options(
                api_url=github_api_url,
                token=github_token,
                app_id=github_app_id,
                app_key_file=github_app_key_file,
                app_installation_id=github_app_installation_id,
                max_wait=github_max_wait,
                app_key=os.environ.get("SECURECASE_GITHUB_APP_KEY"),
            ),
            os.environ,
        )
    else:
        resolved = resolve_subject(given, os.environ)
    flags, context = resolved.flags, resolved.context
    commit, run_url = flags.commit, flags.run_url
    credentials = (
        github_token,
        github_app_id,
        github_app_key_file,
        github_app_installation_id,
        os.environ.get("SECURECASE_GITHUB_APP_KEY"),
    )
    # With nothing to post to and no Actions files to write, the publishing modules stay
    # unloaded (most runs outside GitHub).
    publishing = (
        context is not None
        or publish_to == "github"
        or any(value is not None and value != "" for value in credentials)
    )
    github = None
    if publishing:
        from securecase.github.client import settings_from_options

        github = settings_from_options(
            api_url=github_api_url,
            token=github_token,
            app_id=github_app_id,
            app_key_file=github_app_key_file,
            app_installation_id=github_app_installation_id,
            max_wait=github_max_wait,
            app_key=os.environ.get("SECURECASE_GITHUB_APP_KEY"),
        )
    subject = make_subject(
        provider=provider,
        repo=resolved.repo,
        pr=flags.pr,
        branch=flags.branch,
        target_branch=flags.target_branch,
    )
    if subject.pr is not None and subject.target_branch is None:
        subject = make_subject(
            provider=provider,
            repo=resolved.repo,
            pr=subject.pr,
            branch=subject.branch,
            target_branch=_target_branch_of(subject.pr, resolved.repo, provider, github),
        )
    if shards is not None:
        cases_repo, cases_web_url = _shard_of(shards, subject.slug, cases_web_url)
    plan = None
    if publishing:
        from securecase.github.publish import plan_posting

        plan = plan_posting(publish_to, github, provider=provider)
    request = IngestRequest(
        reports=reports,
        subject=subject,
        cases_repo=cases_repo,
        identity=GitIdentity(git_name, git_email),
        fmt=None if fmt == "auto" else ReportFormat(fmt),
        sources=sources,
        commit=commit,
        committed_at=_normalize_time(commit_time),
        run_url=run_url,
        image=image,
        image_digest=image_digest,
        policy_file=policy_file,
        mode=Mode(mode) if mode else None,
        push_timeout=push_timeout,
        max_report_bytes=max_report_bytes,
        max_findings=max_findings,
        source_root=str(source_root) if source_root else None,
        fallback_root=os.getcwd(),
        queue_root=queue_root(queue_dir),
        # Set by the Action on GitHub-hosted runners, which uploads a queued record as an
        # artifact: the warning then says where the record really waits.
        queue_artifact=os.environ.get("SECURECASE_QUEUE_ARTIFACT", "").strip() == "true",
    )
    result = run_ingest(request, clock=_clock())
    _warn(result.warnings, actions=context is not None)
    if output == "json":
        _emit_json(render.ingest_data(result))
    elif output == "markdown":
        from securecase.github.links import case_file_url, repo_web_base
        from securecase.render import markdown

        # The same summary, links included, as the check run carries.
        server_url = context.server_url if context is not None else "https://github.com"
        web_base = cases_web_url or repo_web_base(cases_repo, server_url=server_url)
        case_url = case_file_url(web_base, result.cases_commit, result.case_path)
        summary = markdown.summary_of(result, case_url=case_url, run_url=run_url)
        _echo_text(markdown.summary_markdown(summary))
    else:
        _echo_text(render.ingest_text(result))
    if plan is not None:
        from securecase.github.publish import publish_ingest

        published = publish_ingest(
            result,
            plan,
            repo=resolved.repo,
            head_sha=commit,
            run_url=run_url,
            cases_repo=cases_repo,
            cases_web_url=cases_web_url,
            context=context,
            now=_clock().now(),
            pr=flags.pr,
            comment=comment,
        )
        if published.internal_error is not None and _verbose():
            import traceback

            traceback.print_exception(published.internal_error)
        _warn(published.warnings, actions=context is not None)
    incomplete = _incomplete_warnings(result)
    _warn(incomplete, actions=context is not None)
    if incomplete and on_incomplete == "fail":
        click.echo("error: a scan did not complete (--on-incomplete fail)", err=True)
        sys.exit(EXIT_INPUT)
    sys.exit(EXIT_BLOCK if result.decision.fails else EXIT_PASS)


def _shard_of(shards: ShardMap, slug: str, web_url: str | None) -> tuple[str, str | None]:
    """The cases repo (and its web page) a shard map gives repository ``slug``; a
    ``UsageError`` when no shard takes it."""
    from securecase.errors import UsageError

    chosen = shards.pick(slug)
    if chosen is None:
        raise UsageError(
            f"{shards.origin}: no shard takes {slug}: no repos pattern of its "
            f"{len(shards.shards)} shard(s) matches, and no shard is the default",
            hint="add a pattern for it to a shard, or mark one shard `default: true`",
        )
    return chosen.cases_repo, chosen.web_url or web_url


def _target_branch_of(pr: int, repo: str, provider: str, github: GitHubSettings | None) -> str:
    """A pull request's target branch when none was given: asked of GitHub when credentials
    exist, else a ``UsageError``. Policies scope rules by target branch, so judging a pull
    request without one could pass what its real target forbids."""
    from securecase.errors import UsageError

    if provider == "github" and github is not None:
        from securecase.github.client import lookup_target_branch

        return lookup_target_branch(github, repo, pr)
    raise UsageError(
        f"--pr {pr} needs --target-branch: the policy's rules depend on the branch a pull "
        "request merges into",
        hint="pass --target-branch NAME, or GitHub credentials (--github-token) to look it up",
    )


def _incomplete_warnings(result: IngestResult) -> tuple[str, ...]:
    """One warning per source of this run whose scanner said the scan did not complete."""
    ran = {name for name, rec in result.case.sources.items() if rec.incomplete}
    return tuple(
        f"source {name}: the scan did not complete ({result.case.sources[name].incomplete[0]}); "
        "its earlier findings stay open"
        for name in sorted(ran)
    )


def _verbose() -> bool:
    return bool(click.get_current_context().find_root().obj.get("verbose"))


def _warn(warnings: tuple[str, ...], *, actions: bool) -> None:
    from securecase.github.outputs import warning_line

    for warning in warnings:
        click.echo(warning_line(warning, actions=actions), err=True)


def _normalize_time(value: str | None) -> str | None:
    if value is None:
        return None
    from datetime import UTC, datetime

    from securecase.clock import iso
    from securecase.errors import UsageError

    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--commit-time {value!r} is not an ISO 8601 time") from None
    return iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


@cli.group()
def cases() -> None:
    """Read the cases in the cases repo."""


@cases.command("list")
@cases_repo_option
@shards_option
@click.option("--repo", metavar="ORG/NAME", help="Only this repository (globs allowed).")
@click.option("--branch", metavar="NAME", help="Only this branch or PR target branch (globs).")
@click.option(
    "--status",
    metavar="STATUS",
    help="OPEN (= NEW, TRIAGED, IN_PROGRESS), NEW, TRIAGED, IN_PROGRESS, RESOLVED or CLOSED.",
)
@click.option("--advisory", metavar="ID", help="Only cases with this advisory open (globs).")
@click.option("--package", metavar="NAME", help="Only cases with this package open (globs).")
@click.option(
    "--output", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True
)
@cache_option
def cases_list(
    cases_repo: str,
    shards_file: str | None,
    repo: str | None,
    branch: str | None,
    status: str | None,
    advisory: str | None,
    package: str | None,
    output: str,
    no_cache: bool,
) -> None:
    """List cases, newest state of each.

    A case file that cannot be read is named in a warning on stderr and the others are still
    listed (`securecase cases validate` is the check that fails on it). With --shards, the
    cases of every shard and the shard each comes from; a case found in two shards is listed
    twice, with a warning.
    """
    from securecase.render import text as render
    from securecase.services.catalog import CaseFilter, list_cases

    case_filter = CaseFilter(
        repo=repo,
        branch=branch,
        status=status.upper() if status else None,
        advisory=advisory,
        package=package,
    )
    shards = shard_map(click.get_current_context(), shards_file)
    where: list[tuple[str, str]] | None = None
    warnings: tuple[str, ...] = ()
    with parse_cache(no_cache) as cache:
        if shards is None:
            listing = list_cases(cases_repo, case_filter, cache=cache)
            found, broken = list(listing.cases), listing.broken
        else:
            from securecase.services.shards import list_sharded

            sharded = list_sharded(shards, case_filter, cache=cache)
            found = [case for _, case in sharded.rows]
            broken, warnings = sharded.broken, sharded.warnings
            if len(shards.shards) > 1:
                where = [(shard.name, shard.shown) for shard, _ in sharded.rows]
    for broken_file in broken:
        click.echo(f"securecase: warning: skipped a broken case file: {broken_file}", err=True)
    for warning in warnings:
        click.echo(f"securecase: warning: {warning}", err=True)
    if output == "json":
        rows = [render.case_row(c, where[n] if where else None) for n, c in enumerate(found)]
        _emit_json(rows)
    elif output == "csv":
        _echo_text(render.cases_csv(found, where), nl=False)
    elif found:
        _echo_text(render.cases_table(found, where))
    else:
        click.echo("no cases match", err=True)


@cases.command("show")
@click.argument("key")
@cases_repo_option
@click.option(
    "--output", type=click.Choice(["text", "yaml", "json"]), default="text", show_default=True
)
@cache_option
def cases_show(key: str, cases_repo: str, output: str, no_cache: bool) -> None:
    """Show one case by key, e.g. github::acme::shop::PR::42.

    A closed case the sweep retired from the tip is shown as it was when it left, with the
    commit that removed it (`--output yaml` prints that last case.yaml).
    """
    from securecase.render import text as render
    from securecase.services.catalog import find_case
    from securecase.storage.casefile import case_data

    with parse_cache(no_cache) as cache:
        found = find_case(cases_repo, key, cache=cache)
    retired = found.retired
    if output == "yaml":
        _echo_text(found.data.decode("utf-8"), nl=False)
    elif output == "json":
        data = case_data(found.case)
        if retired is not None:
            data["retired"] = {
                "commit": retired.commit,
                "at": retired.at,
                "by_sweep": retired.by_sweep,
            }
        _emit_json(data)
    else:
        _echo_text(render.case_text(found.case, found.path, retired=retired))


@cases.command("history")
@click.argument("key")
@cases_repo_option
@click.option(
    "--git-email",
    envvar="SECURECASE_GIT_EMAIL",
    default="securecase-bot@users.noreply.github.com",
    show_default=True,
    metavar="EMAIL",
    help="Email of the bot's commits (env SECURECASE_GIT_EMAIL); other authors are human.",
)
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="Only the commits made on or after this day (UTC); a remote fetches only those.",
)
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def cases_history(
    key: str, cases_repo: str, git_email: str, since: datetime | None, output: str
) -> None:
    """Show a case's timeline from the cases repo's git history, oldest commit first.

    One row per commit that changed the case file: time, author (bot or human), the scanned
    commit, decision, status and counts (critical/high/medium/low), and what a human changed
    (status, assignee, tags, notes).
    """
    from securecase.render import text as render
    from securecase.services.history import case_history
    from securecase.storage.store import GitIdentity

    history = case_history(
        cases_repo,
        key,
        bot=GitIdentity("securecase-bot", git_email),
        since=since.date() if since else None,
    )
    if output == "json":
        _emit_json(render.history_data(history))
    else:
        _echo_text(render.history_table(history))


@cases.command("validate")
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@cases_repo_option
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def cases_validate(paths: tuple[str, ...], cases_repo: str, output: str) -> None:
    """Check the case folders of a cases repo checkout (all, or the PATHs given).

    Each case.yaml must match its schema (status values included), its key must name the
    folder it is in, its counts and max_severity must agree with its findings, and each
    source's raw report must be present with the recorded sha256. Problems are reported as
    file:line; exit code 2 when there is any, 0 when every case is valid.
    """
    from securecase.services.validate import validate_cases

    checked = validate_cases(cases_repo, paths)
    if output == "json":
        _emit_json(
            {
                "valid": checked.valid,
                "checked": list(checked.checked),
                "problems": list(checked.problems),
            }
        )
    else:
        for problem in checked.problems:
            click.echo(problem)
        verdict = "valid" if checked.valid else f"{len(checked.problems)} problem(s)"
        click.echo(f"{len(checked.checked)} case folder(s) checked: {verdict}", err=True)
    sys.exit(EXIT_PASS if checked.valid else EXIT_INPUT)


@cli.group()
def policy() -> None:
    """Check policy files and preview the impact of a policy change."""


@policy.command("validate")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def policy_validate(file: Path | None, output: str) -> None:
    """Validate a policy file (default: ./policy.yaml): schema and semantic checks.

    Problems are reported as file:line with what was expected; exit code 2 when invalid. An
    exception that has already expired is an error; one expiring within 14 days is a warning.
    Today is taken from $SECURECASE_NOW (ISO 8601, UTC) when set, else the system clock.
    """
    from datetime import UTC, timedelta

    from securecase.domain.policy import validate_policy
    from securecase.domain.policy.evaluate import EXPIRY_WARNING_DAYS
    from securecase.storage.userfile import read_regular_file

    path = file or Path("policy.yaml")
    data = read_regular_file(path, what=str(path))
    today = _clock().now().astimezone(UTC).date()
    loaded = validate_policy(data, origin=str(path), today=today)
    horizon = today + timedelta(days=EXPIRY_WARNING_DAYS)
    expiring = [e for e in loaded.exceptions if e.expires <= horizon]
    if output == "json":
        _emit_json(
            {
                "valid": True,
                "path": str(path),
                "blob": loaded.blob,
                "mode": loaded.mode.value,
                "rules": [r.id for r in loaded.rules],
                "exceptions": [e.id for e in loaded.exceptions],
                "expiring": [{"id": e.id, "expires": e.expires.isoformat()} for e in expiring],
            }
        )
    else:
        click.echo(
            f"{path}: valid ({len(loaded.rules)} rule(s), {len(loaded.exceptions)} "
            f"exception(s), mode {loaded.mode.value})"
        )
    for soon in expiring:
        click.echo(
            f"securecase: warning: exception {soon.id} expires on {soon.expires.isoformat()}",
            err=True,
        )


@policy.command("diff")
@click.argument("policies", nargs=-1, type=click.Path(path_type=Path), metavar="[OLD] [NEW]")
@click.option(
    "--base-ref",
    metavar="REF",
    help="Take OLD from the cases repo's policy.yaml at this ref (e.g. origin/main); NEW "
    "then defaults to the cases repo's working policy.yaml.",
)
@cases_repo_option
@shards_option
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="Judge as of this day (exception expiry, finding age). Default: today (UTC), or the "
    "day of $SECURECASE_NOW when set.",
)
@click.option(
    "--fail-on-new-blocks",
    is_flag=True,
    help="Exit 1 when some open case that passes today would block under NEW.",
)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@cache_option
def policy_diff(
    policies: tuple[Path, ...],
    base_ref: str | None,
    cases_repo: str,
    shards_file: str | None,
    today: datetime | None,
    fail_on_new_blocks: bool,
    output: str,
    no_cache: bool,
) -> None:
    """Show which open cases would change decision if policy OLD were replaced by NEW.

    Every open case in the cases repo (with --shards: in every shard) is judged under both
    policies; the output lists the
    cases that flip pass -> block and block -> pass with the reasons on each side, the
    exceptions that become stale or expired, and those that already were. Exit code 0 (also
    when cases flip), unless --fail-on-new-blocks is given and a case would newly block (1);
    2 when a policy is invalid.
    """
    from datetime import UTC

    from securecase.errors import UsageError
    from securecase.render import text as render
    from securecase.services.policydiff import (
        diff_policies,
        policy_at_ref,
        policy_from_file,
        working_policy,
    )

    shards = shard_map(click.get_current_context(), shards_file)
    if shards is not None and base_ref is not None:
        raise UsageError(
            "--base-ref reads one cases repo's policy history; with --shards give the OLD and "
            "NEW policy files",
            hint="e.g. git show origin/main:policy.yaml > old.yaml; securecase policy diff "
            "--shards FILE old.yaml policy.yaml",
        )
    if base_ref is not None:
        if len(policies) > 1:
            raise UsageError("with --base-ref give at most one policy file (NEW)")
        new = policy_from_file(policies[0]) if policies else working_policy(cases_repo)
        old = policy_at_ref(cases_repo, base_ref)
    elif len(policies) == 2:
        old, new = policy_from_file(policies[0]), policy_from_file(policies[1])
    else:
        raise UsageError(
            "policy diff needs OLD and NEW policy files, or --base-ref REF [NEW]",
            hint="e.g. securecase policy diff --base-ref origin/main",
        )
    day = today.date() if today is not None else _clock().now().astimezone(UTC).date()
    heads: list[dict[str, str | None]] = []
    with parse_cache(no_cache) as cache:
        if shards is None:
            diff = diff_policies(cases_repo, old, new, today=day, cache=cache)
        else:
            from securecase.services.shards import diff_sharded

            sharded = diff_sharded(shards, old, new, today=day, cache=cache)
            diff = sharded.diff
            heads = [
                {"name": shard.name, "cases_repo": shard.shown, "cases_commit": head}
                for shard, head in sharded.heads
            ]
            for warning in sharded.warnings:
                click.echo(f"securecase: warning: {warning}", err=True)
    if output == "json":
        data = render.policy_diff_data(diff)
        if shards is not None:
            data["shards"] = heads
        _emit_json(data)
    else:
        _echo_text(render.policy_diff_text(diff))
        if shards is not None:
            read = ", ".join(
                f"{h['name']} at {(h['cases_commit'] or 'no commit')[:12]}" for h in heads
            )
            _echo_text(f"shards read: {read}")
    sys.exit(EXIT_BLOCK if fail_on_new_blocks and diff.new_blocks else EXIT_PASS)


from securecase.cli.report import report  # noqa: E402  (registered after the group exists)

cli.add_command(report)


#: Characters of one error message or problem line shown; input can make them any size (a
#: megabyte-long key, an expanded YAML alias), and an error must stay readable.
MAX_ERROR_CHARS = 2000
#: Located problems shown before "... and N more".
SHOWN_PROBLEMS = 50


def _render_error(error: SecurecaseError) -> None:
    click.echo(f"securecase: error: {_capped(error.message)}", err=True)
    if isinstance(error, InputError):
        shown = error.problems[:SHOWN_PROBLEMS]
        for problem in shown:
            click.echo(f"  {_capped(problem)}", err=True)
        if len(error.problems) > len(shown):
            click.echo(f"  ... and {len(error.problems) - len(shown)} more", err=True)
    if error.hint:
        click.echo(f"hint: {_capped(error.hint)}", err=True)


def _capped(text: str) -> str:
    """``text`` within :data:`MAX_ERROR_CHARS`, marked when cut."""
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return f"{text[:MAX_ERROR_CHARS]}... ({len(text) - MAX_ERROR_CHARS} more characters cut)"


def main(argv: list[str] | None = None) -> NoReturn:
    """Console entry point: runs the CLI and maps every failure to its exit code."""
    sys.exit(_run(argv))


def _run(argv: list[str] | None) -> int:
    """Run the CLI; the exit code."""
    verbose = "--verbose" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="securecase", standalone_mode=False)
    except SystemExit as done:  # commands end with sys.exit(code)
        return _exit_code(done.code)
    except SecurecaseError as error:
        if verbose:
            import traceback

            traceback.print_exc()
        _render_error(error)
        return error.exit_code
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as error:
        error.show()
        return EXIT_INPUT
    except click.Abort:
        click.echo("aborted", err=True)
        return EXIT_INFRA
    except KeyboardInterrupt:
        return 130
    except Exception:  # a bug: never report it as a pass
        import traceback

        if verbose or os.environ.get("SECURECASE_DEBUG"):
            traceback.print_exc()
        else:
            click.echo(
                f"securecase: internal error: {traceback.format_exc().splitlines()[-1]}\n"
                "hint: re-run with --verbose and report the traceback",
                err=True,
            )
        return EXIT_INFRA
    return EXIT_PASS


# Commands kept in their own modules, registered on the group (they import nothing from here).
from securecase.cli.sweep import sweep  # noqa: E402

cli.add_command(sweep)


def _exit_code(code: object) -> int:
    """``sys.exit``'s argument as a process exit code."""
    if code is None:
        return EXIT_PASS
    if isinstance(code, int):
        return code
    click.echo(str(code), err=True)  # sys.exit("message") prints it and exits 1
    return 1
