"""The Actions context, on GitHub's published webhook payload examples.

Payloads are in tests/fixtures/github-events (sources in tests/fixtures/MANIFEST.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import FIXTURES, read_github_output
from securecase.errors import InputError, UsageError
from securecase.github.actions import (
    SubjectFlags,
    in_actions,
    read_context,
    resolve_subject,
    with_context_defaults,
)

EVENTS = FIXTURES / "github-events"
MERGE_SHA = "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeed"
PR_HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def env(event: str, payload: Path | str | None, **extra: str) -> dict[str, str]:
    values = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_REPOSITORY": "Codertocat/Hello-World",
        "GITHUB_SHA": MERGE_SHA,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": "https://api.github.com",
        "GITHUB_RUN_ID": "1234",
        "GITHUB_RUN_ATTEMPT": "1",
    }
    if payload is not None:
        values["GITHUB_EVENT_PATH"] = str(payload)
    values.update(extra)
    return values


@pytest.mark.parametrize("event", ["pull_request", "pull_request_target"])
def test_pull_request_uses_the_head_sha_not_the_merge_commit(event: str) -> None:
    ctx = read_context(
        env(event, EVENTS / "pull_request.synchronize.json", GITHUB_REF="refs/pull/2/merge")
    )
    assert ctx.pr == 2
    assert ctx.head_sha == PR_HEAD != MERGE_SHA
    assert ctx.branch == "changes" and ctx.target_branch == "master"
    assert ctx.repository == "Codertocat/Hello-World"
    assert ctx.run_url == "https://github.com/Codertocat/Hello-World/actions/runs/1234"
    assert ctx.from_fork is False


def test_pull_request_from_a_fork(tmp_path: Path) -> None:
    payload = json.loads((EVENTS / "pull_request.synchronize.json").read_text())
    payload["pull_request"]["head"]["repo"]["full_name"] = "mallory/Hello-World"
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload))
    assert read_context(env("pull_request", path)).from_fork is True


def test_push_to_a_branch() -> None:
    ctx = read_context(
        env("push", EVENTS / "push.with-new-branch.json", GITHUB_REF="refs/heads/master")
    )
    assert ctx.pr is None and ctx.target_branch is None
    assert ctx.branch == "master"
    assert ctx.head_sha == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"


def test_schedule_uses_the_checked_out_commit() -> None:
    ctx = read_context(
        env(
            "schedule",
            EVENTS / "schedule.json",
            GITHUB_REF="refs/heads/main",
            GITHUB_RUN_ATTEMPT="2",
        )
    )
    assert ctx.branch == "main" and ctx.head_sha == MERGE_SHA and ctx.pr is None
    assert ctx.run_url == "https://github.com/Codertocat/Hello-World/actions/runs/1234/attempts/2"


def test_workflow_dispatch_takes_the_ref_from_the_payload_when_env_lacks_it() -> None:
    ctx = read_context(env("workflow_dispatch", EVENTS / "workflow_dispatch.json"))
    assert ctx.branch == "master" and ctx.head_sha == MERGE_SHA
    assert ctx.repository == "Codertocat/Hello-World"


def test_files_for_summary_and_outputs_and_enterprise_urls() -> None:
    ctx = read_context(
        env(
            "push",
            None,
            GITHUB_STEP_SUMMARY="/tmp/summary",
            GITHUB_OUTPUT="/tmp/out",
            GITHUB_SERVER_URL="https://ghe.example.com/",
            GITHUB_API_URL="https://ghe.example.com/api/v3",
        )
    )
    assert ctx.step_summary_path == "/tmp/summary" and ctx.output_path == "/tmp/out"
    assert ctx.server_url == "https://ghe.example.com"
    assert ctx.api_url == "https://ghe.example.com/api/v3"


def test_unreadable_or_malformed_payload_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_context(env("push", tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(InputError, match="not valid JSON"):
        read_context(env("push", bad))
    bad.write_text("[]")
    with pytest.raises(InputError, match=r"JSON object at \$"):
        read_context(env("push", bad))


def test_in_actions() -> None:
    assert in_actions({"GITHUB_ACTIONS": "true"})
    assert not in_actions({"CI": "true"})


def test_explicit_flags_win_over_the_context() -> None:
    ctx = read_context(env("pull_request", EVENTS / "pull_request.synchronize.json"))
    none = SubjectFlags(None, None, None, None, None, None)
    filled = with_context_defaults(none, ctx)
    assert (filled.repo, filled.pr, filled.branch, filled.target_branch) == (
        "Codertocat/Hello-World",
        2,
        "changes",
        "master",
    )
    assert filled.commit == PR_HEAD
    own = with_context_defaults(SubjectFlags("acme/shop", None, "main", None, "abc", None), ctx)
    assert (own.repo, own.pr, own.branch, own.target_branch, own.commit) == (
        "acme/shop",
        None,
        "main",
        None,
        "abc",
    )


NO_FLAGS = SubjectFlags(None, None, None, None, None, None)


def test_resolve_subject_inside_actions_fills_from_the_event() -> None:
    resolved = resolve_subject(
        NO_FLAGS, env("pull_request", EVENTS / "pull_request.synchronize.json")
    )
    assert resolved.context is not None and resolved.context.event_name == "pull_request"
    assert resolved.repo == resolved.flags.repo == "Codertocat/Hello-World"
    assert (resolved.flags.pr, resolved.flags.target_branch) == (2, "master")
    assert resolved.flags.commit == PR_HEAD
    assert resolved.flags.run_url == "https://github.com/Codertocat/Hello-World/actions/runs/1234"


def test_resolve_subject_outside_actions_keeps_the_flags_and_ignores_github_env() -> None:
    flags = SubjectFlags("acme/shop", None, "main", None, None, None)
    outside = env("pull_request", EVENTS / "pull_request.synchronize.json", GITHUB_ACTIONS="")
    resolved = resolve_subject(flags, outside)
    assert resolved.context is None
    assert resolved.flags == flags and resolved.repo == "acme/shop"


def test_resolve_subject_needs_the_repo_outside_actions() -> None:
    with pytest.raises(UsageError) as caught:
        resolve_subject(SubjectFlags(None, 1, None, None, None, None), {"CI": "true"})
    assert caught.value.message == "--repo ORG/NAME is required outside GitHub Actions"
    assert caught.value.hint == "inside Actions it defaults to $GITHUB_REPOSITORY"


def test_resolve_subject_fails_closed_on_an_unreadable_payload(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        resolve_subject(NO_FLAGS, env("push", tmp_path / "missing.json"))


def edited_push(tmp_path: Path, **changes: object) -> Path:
    """GitHub's push example with some fields changed (GitHub publishes no tag/delete sample)."""
    payload = json.loads((EVENTS / "push.with-new-branch.json").read_text())
    payload.update(changes)
    path = tmp_path / "push.json"
    path.write_text(json.dumps(payload))
    return path


def test_push_of_a_tag_names_no_branch_and_says_so(tmp_path: Path) -> None:
    event = edited_push(tmp_path, ref="refs/tags/v1.0")
    ctx = read_context(env("push", event, GITHUB_REF="refs/tags/v1.0"))
    assert ctx.branch is None and ctx.pr is None
    assert ctx.head_sha == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    with pytest.raises(UsageError) as caught:
        resolve_subject(NO_FLAGS, env("push", event, GITHUB_REF="refs/tags/v1.0"))
    assert caught.value.message == "this push run on refs/tags/v1.0 names no pull request or branch"
    assert "--branch" in (caught.value.hint or "")
    # With the branch given, the tag's commit is scanned into that branch's case.
    flags = SubjectFlags(None, None, "master", None, None, None)
    resolved = resolve_subject(flags, env("push", event, GITHUB_REF="refs/tags/v1.0"))
    assert resolved.flags.commit == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"


def test_push_that_deleted_a_branch_has_no_commit_to_report_on(tmp_path: Path) -> None:
    zero = "0" * 40
    event = edited_push(tmp_path, after=zero, deleted=True, created=False, head_commit=None)
    ctx = read_context(env("push", event, GITHUB_REF="refs/heads/master", GITHUB_SHA=zero))
    assert ctx.branch == "master" and ctx.head_sha is None


def test_workflow_dispatch_on_a_tag_names_no_branch(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"workflow_dispatch run on refs/tags/v2 names no"):
        resolve_subject(
            NO_FLAGS,
            env("workflow_dispatch", EVENTS / "workflow_dispatch.json", GITHUB_REF="refs/tags/v2"),
        )


def test_step_outputs_keep_multiline_values_whole(tmp_path: Path) -> None:
    # Parsed as the runner does: name=value, or name<<DELIM ... DELIM. A value cannot end the
    # block early or add an output, whatever lines it holds.
    from securecase.github.outputs import append_outputs

    path = tmp_path / "output.txt"
    hostile = "first\nEOF\nsecurecase_\ndecision=pass\nlast"
    append_outputs(path.as_posix(), {"note": hostile, "decision": "block"})
    values = read_github_output(path)
    assert values == {"note": hostile, "decision": "block"}
