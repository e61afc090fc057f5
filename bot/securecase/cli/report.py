"""``securecase report``: metrics, exports and the static dashboard."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from securecase.cli.common import (
    cache_option,
    cases_repo_option,
    clock_from_env,
    echo_text,
    parse_cache,
    refuse_one_web_url,
    shard_map,
    shards_option,
)


@click.command("report")
@cases_repo_option
@shards_option
@click.option(
    "--repo",
    "repos",
    multiple=True,
    metavar="GLOB",
    help="Only these repositories (ORG/NAME globs, any case; repeat for several).",
)
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="First day of the window (default: 90 days before --until).",
)
@click.option(
    "--until",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="Last day of the window (default: today, UTC, or the day of $SECURECASE_NOW).",
)
@click.option(
    "--output",
    type=click.Choice(["text", "json", "csv", "openmetrics"]),
    default="text",
    show_default=True,
)
@click.option(
    "--html",
    "html_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Also write the dashboard to DIR/index.html (one self-contained page).",
)
@click.option(
    "--cases-web-url",
    envvar="SECURECASE_CASES_WEB_URL",
    metavar="URL",
    help="Web page of the cases repo (https://HOST/OWNER/NAME) for the dashboard's links to "
    "case files. Default: derived from a GitHub --cases-repo URL; for a local work tree, "
    "file links.",
)
@click.option(
    "--git-email",
    envvar="SECURECASE_GIT_EMAIL",
    default="securecase-bot@users.noreply.github.com",
    show_default=True,
    metavar="EMAIL",
    help="Email of the bot's commits (env SECURECASE_GIT_EMAIL); other authors are human.",
)
@cache_option
def report(
    cases_repo: str,
    shards_file: str | None,
    repos: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    output: str,
    html_dir: Path | None,
    cases_web_url: str | None,
    git_email: str,
    no_cache: bool,
) -> None:
    """Security posture from the cases repo: open cases and findings, weekly trend, MTTR,
    MTTA, SLA, exceptions, the gate and exposure.

    Computed from the case files at HEAD and the history (the bot's commit trailers, human
    triage commits) over a window of days, by default the last 90. Now is $SECURECASE_NOW
    (ISO 8601, UTC) when set, else the system clock. With --shards, over every shard of the
    file: the same figures as one cases repo holding all their cases.
    """
    from securecase.render import report as render
    from securecase.services.report import ReportRequest, build_report, case_links
    from securecase.storage.cachedir import cache_dir
    from securecase.storage.store import GitIdentity

    shards = shard_map(click.get_current_context(), shards_file)
    refuse_one_web_url(shards, cases_web_url)
    request = ReportRequest(
        cases_repo=cases_repo,
        since=since.date() if since else None,
        until=until.date() if until else None,
        repos=tuple(r for r in repos if r.strip()),
        bot=GitIdentity("securecase-bot", git_email),
        cache_dir=None if no_cache else cache_dir(),
    )
    sources: list[dict[str, Any]] = []
    with parse_cache(no_cache) as cache:
        if shards is None:
            result = build_report(request, clock=clock_from_env(), parse_cache=cache)
            metrics, warnings = result.metrics, result.warnings
        else:
            from securecase.services.shards import report_sharded

            sharded = report_sharded(shards, request, clock=clock_from_env(), parse_cache=cache)
            metrics, warnings = sharded.metrics, sharded.warnings
            sources = [
                {
                    "name": part.shard.name,
                    "cases_repo": part.shard.shown,
                    "cases_commit": part.head,
                    "cases": len(part.case_paths),
                }
                for part in sharded.parts
            ]
        # The history cache lives in the same folder: its warning covers both.
        cache.warned = bool(warnings)
    if warnings:
        from securecase.github.outputs import warning_line  # rare: not worth its import time

        actions = os.environ.get("GITHUB_ACTIONS") == "true"
        for warning in warnings:
            click.echo(warning_line(warning, actions=actions), err=True)
    if html_dir is not None:
        from securecase.render.dashboard import render_dashboard
        from securecase.services.report import ReportResult, write_page

        if shards is None:
            links = case_links(result, cases_repo, cases_web_url)
        else:
            links = {}
            for part in sharded.parts:
                one = ReportResult(metrics, part.head, part.case_paths)
                links.update(case_links(one, part.shard.cases_repo, part.shard.web_url))
        page = render_dashboard(metrics, links, title="Security posture")
        write_page(html_dir, page)
    if output == "json":
        data = render.report_data(metrics)
        if shards is not None:
            data["shards"] = sources
        click.echo(render.report_json(data))
    elif output == "csv":
        echo_text(render.report_csv(metrics), nl=False)
    elif output == "openmetrics":
        from securecase.render.openmetrics import report_openmetrics

        click.echo(report_openmetrics(metrics), nl=False)
    else:
        echo_text(render.report_text(metrics))
        if shards is not None:
            echo_text(
                "shards read: " + ", ".join(f"{s['name']} ({s['cases']} cases)" for s in sources)
            )
