"""Case keys and the encoding of names into cases-repo folders."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securecase.domain.subjects import (
    Provider,
    check_branch_name,
    check_commit_id,
    decode_segment,
    encode_segment,
    make_subject,
    parse_key,
)
from securecase.errors import UsageError

SAFE_SEGMENT = re.compile(r"[A-Za-z0-9._%~-]+")


def subject(**kw):
    args = {
        "provider": "github",
        "repo": "acme/shop",
        "pr": None,
        "branch": None,
        "target_branch": None,
    }
    args.update(kw)
    return make_subject(**args)


def test_pr_key_and_folder():
    s = subject(pr=42, target_branch="main")
    assert s.key == "github::acme::shop::PR::42"
    assert s.folder == "cases/github/acme/shop/pr-42"


def test_branch_key_and_folder_encode_slash():
    s = subject(branch="feature/login")
    assert s.key == "github::acme::shop::BR::feature/login"
    assert s.folder == "cases/github/acme/shop/branch-feature%2Flogin"


@pytest.mark.parametrize("name", ["../../x", "..", ".", ".hidden", "a/../../b", "/abs", "x\\y"])
def test_hostile_branch_names_stay_inside_the_case_folder(name):
    folder = subject(branch=name).folder
    assert folder.startswith("cases/github/acme/shop/branch-")
    segment = folder.rsplit("/", 1)[1]
    assert "/" not in segment and segment not in {".", ".."}
    assert not segment.startswith(".")
    assert decode_segment(segment.removeprefix("branch-")) == name


def test_long_branch_name_is_hashed_into_a_short_segment():
    name = "b" * 300
    segment = encode_segment(name)
    assert len(segment.encode()) <= 200
    assert "~" in segment and decode_segment(segment) is None
    assert encode_segment(name + "x") != segment


@pytest.mark.parametrize("name", ["a\nb", "tab\there", "", "nul\x00"])
def test_control_characters_and_empty_names_are_refused(name):
    with pytest.raises(UsageError):
        subject(branch=name)


@pytest.mark.parametrize("repo", ["acme", "acme/", "/shop", "acme/../x", "ac me/shop", "a/b/c"])
def test_bad_repo_names_are_refused(repo):
    with pytest.raises(UsageError):
        subject(repo=repo, pr=1)


def test_gitlab_groups_nest():
    s = make_subject(provider="gitlab", repo="grp/sub/proj", pr=3, branch=None, target_branch=None)
    assert s.provider is Provider.GITLAB and s.org == "grp/sub" and s.repo == "proj"
    assert s.folder == "cases/gitlab/grp%2Fsub/proj/pr-3"


def test_subject_needs_pr_or_branch_and_positive_pr():
    with pytest.raises(UsageError, match="no subject"):
        subject()
    with pytest.raises(UsageError, match="positive"):
        subject(pr=0)
    with pytest.raises(UsageError, match="target-branch"):
        subject(branch="x", target_branch="main")


def test_parse_key_round_trip():
    for s in (subject(pr=7), subject(branch="release/1.x")):
        assert parse_key(s.key).key == s.key
    with pytest.raises(UsageError):
        parse_key("github::acme::shop::XX::1")


@given(st.text(min_size=1, max_size=120))
def test_encoding_is_safe_and_reversible(name):
    segment = encode_segment(name)
    assert SAFE_SEGMENT.fullmatch(segment)
    assert not segment.startswith(".")
    assert len(segment) <= 200
    decoded = decode_segment(segment)
    if decoded is not None:
        assert decoded == name


@given(st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60))
def test_distinct_names_get_distinct_segments(a, b):
    if a != b:
        assert encode_segment(a) != encode_segment(b)


@pytest.mark.parametrize(
    "value",
    ["abc123", "g" * 40, "a" * 65, "3f1c2a9\nSecurecase-Decision: pass", "3f1c2a9 ", "", "HEAD"],
)
def test_a_commit_id_is_hex_only(value):
    with pytest.raises(UsageError) as info:
        check_commit_id(value)
    assert "expected a git commit id" in info.value.message
    assert "\n" not in info.value.message.replace("\\n", "")


@pytest.mark.parametrize("value", ["3f1c2a9", "A" * 40, "0123456789abcdef" * 4])
def test_commit_ids_of_7_to_64_hex_digits_are_kept_lower_case(value):
    assert check_commit_id(value) == value.lower()


def test_a_branch_name_that_is_not_utf8_is_a_usage_error():
    name = b"feature/\xff\xfe".decode("utf-8", "surrogateescape")
    with pytest.raises(UsageError) as info:
        check_branch_name(name)
    assert "not UTF-8" in info.value.message
