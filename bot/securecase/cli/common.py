"""Options and helpers shared by the command modules of the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from securecase.clock import Clock
    from securecase.domain.shards import ShardMap
    from securecase.storage.parsecache import ParseCache

DEFAULT_CASES_REPO = "./security-cases"


def _allow_full_clone(ctx: click.Context, param: click.Parameter, allowed: bool) -> None:
    # The remote store reads this setting where it opens the clone, whichever command (and
    # shard) opens it; the option only sets it for this process.
    if allowed:
        from securecase.storage.remote import ALLOW_FULL_CLONE_ENV

        os.environ[ALLOW_FULL_CLONE_ENV] = "1"


_cases_repo = click.option(
    "--cases-repo",
    envvar="SECURECASE_CASES_REPO",
    default=DEFAULT_CASES_REPO,
    show_default="$SECURECASE_CASES_REPO, else ./security-cases",
    metavar="PATH|URL",
    help="The security-cases git repository: a local path (ingest creates a missing one) or a "
    "git URL.",
)

allow_full_clone_option = click.option(
    "--allow-full-clone",
    is_flag=True,
    expose_value=False,
    callback=_allow_full_clone,
    help="Accept a git server that ignores partial-clone filters (also: env "
    "SECURECASE_ALLOW_FULL_CLONE=1): every file of the cases repo is then downloaded. Refused "
    "(exit 3) by default.",
)


def cases_repo_option(command: Any) -> Any:
    """``--cases-repo`` and ``--allow-full-clone``: where the cases are, and how it may be read."""
    return _cases_repo(allow_full_clone_option(command))


shards_option = click.option(
    "--shards",
    "shards_file",
    envvar="SECURECASE_SHARDS",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Shard file (env SECURECASE_SHARDS): the organisation's cases spread over several "
    'cases repos by ORG/NAME pattern (see README "Shards"). Not with --cases-repo.',
)

github_token_option = click.option(
    "--github-token",
    envvar="GITHUB_TOKEN",
    show_default=False,
    show_envvar=False,
    metavar="TOKEN",
    help="Token for the GitHub API (default $GITHUB_TOKEN). Never printed.",
)

github_api_url_option = click.option(
    "--github-api-url",
    envvar="GITHUB_API_URL",
    default="https://api.github.com",
    show_default="$GITHUB_API_URL, else https://api.github.com",
    metavar="URL",
    help="GitHub API base URL (GitHub Enterprise Server: https://HOST/api/v3).",
)

cache_option = click.option(
    "--no-cache",
    is_flag=True,
    help="Read every case file afresh and leave the cache alone (also: env "
    "SECURECASE_CACHE=off). By default what was parsed is kept, by git blob id, in "
    "$SECURECASE_CACHE_DIR, else $XDG_CACHE_HOME/securecase, else ~/.cache/securecase.",
)


def shard_map(ctx: click.Context, shards_file: str | None) -> ShardMap | None:
    """The shard map of ``--shards`` (None without one); a ``UsageError`` when a cases repo
    was also named (on the command line or in $SECURECASE_CASES_REPO): one of the two must
    say where the cases are."""
    if shards_file is None:
        return None
    from pathlib import Path

    from securecase.errors import UsageError
    from securecase.storage.shardfile import load_shards

    given = click.core.ParameterSource.COMMANDLINE
    source = ctx.get_parameter_source("cases_repo")
    if source in (given, click.core.ParameterSource.ENVIRONMENT):
        named = "--cases-repo" if source is given else "$SECURECASE_CASES_REPO"
        from_line = ctx.get_parameter_source("shards_file") is given
        shards_from = "--shards" if from_line else "$SECURECASE_SHARDS"
        raise UsageError(
            f"{named} and {shards_from} are mutually exclusive: name one cases repo, or a "
            "shard file that lists them all",
            hint="unset one of them (the shard file names every cases repo it reads)",
        )
    return load_shards(Path(shards_file))


def refuse_one_web_url(shards: ShardMap | None, cases_web_url: str | None) -> None:
    """With shards, each has its own web page (``web_url`` in the shard file): one
    ``--cases-web-url`` for them all would link cases to the wrong repository."""
    if shards is not None and cases_web_url:
        from securecase.errors import UsageError

        raise UsageError(
            "--cases-web-url names one cases repo's web page; with --shards each shard's "
            "web_url in the shard file says it",
            hint=f"add web_url to the shards of {shards.origin} and drop --cases-web-url "
            "(or $SECURECASE_CASES_WEB_URL)",
        )


@contextlib.contextmanager
def parse_cache(no_cache: bool) -> Iterator[ParseCache]:
    """The parse cache of one command: written at the end; a cache that failed is named in
    one warning on stderr (the command itself goes on without it)."""
    from securecase.storage.parsecache import open_cache

    cache = open_cache(os.environ, enabled=not no_cache)
    try:
        yield cache
    finally:
        cache.close()
        if cache.warning and not cache.warned:
            click.echo(f"securecase: warning: {cache.warning}", err=True)


def clock_from_env() -> Clock:
    """The clock: the system's, or the fixed moment in $SECURECASE_NOW (replays and tests)."""
    from securecase import clock

    return clock.clock_from_env(os.environ)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def echo_text(text: str, *, nl: bool = True) -> None:
    """Print text that holds scanner- or human-written parts (file names, titles, notes).

    Inside GitHub Actions a line of the log starting with ``::`` is a workflow command, so
    such text is printed with workflow commands stopped (unless stdout goes to a file).
    """
    if os.environ.get("GITHUB_ACTIONS") == "true" and not stdout_is_a_file():
        from securecase.github.outputs import guard_commands

        text = guard_commands(text.rstrip("\n"))
        nl = True
    click.echo(text, nl=nl)


def stdout_is_a_file() -> bool:
    """True when stdout is redirected to a file, which the Actions runner does not read."""
    import stat

    try:
        return stat.S_ISREG(os.fstat(sys.stdout.fileno()).st_mode)
    except (OSError, ValueError):
        return False
