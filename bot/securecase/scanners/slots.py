"""Default source slot names, derived from what a report scanned.

Two scans that fill one slot replace each other's findings, so a default slot must differ
whenever the scanned artifact differs: ``trivy-image-ghcr.io-acme-shop`` for an image (its tag
and digest left out, so every build of the image shares the slot), ``trivy-fs-services-api``
for a folder, ``semgrep-backend`` for a SARIF run of category ``backend``. The names are
slug-safe and stable; a name that would exceed the 63 characters a slot may have keeps its
start and ends in a hash of the whole, so two long names never meet.

Cases written before slots were derived use the per-tool names (``trivy-image``, ``bandit``);
:func:`artifact_key` lets the ingest service keep using such a slot for the same artifact.
"""

from __future__ import annotations

import hashlib
import re

#: The longest source slot name (see ``check_source_name``).
SLOT_LIMIT = 63
_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_RUNS = re.compile(r"[-._]{2,}")
_DIGEST_SUFFIX = re.compile(r"@[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]+\Z")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")


def slug(text: str) -> str:
    """``text`` as slot-safe characters: lower case, runs of anything else made one ``-``."""
    cut = _UNSAFE.sub("-", text.lower())
    return _RUNS.sub(lambda m: m.group()[0], cut).strip("-._")


def slot_name(*parts: str | None) -> str:
    """Join the non-empty slugs of ``parts`` with ``-``; names above the limit keep their
    start and end in 8 hex digits of a hash of the full name."""
    name = "-".join(s for s in (slug(p) for p in parts if p) if s)
    if len(name) <= SLOT_LIMIT:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return name[: SLOT_LIMIT - 9].rstrip("-._") + "-" + digest


def image_name(reference: str) -> str:
    """An image reference without its digest and tag: ``ghcr.io:443/acme/shop:1.2@sha256:…``
    gives ``ghcr.io:443/acme/shop`` (a ``:`` in the registry host is not a tag)."""
    name = _DIGEST_SUFFIX.sub("", reference)
    head, sep, tag = name.rpartition(":")
    if sep and "/" not in tag and _TAG.match(tag):
        return head
    return name


def artifact_key(fmt: str, tool: str, artifact: str | None) -> str | None:
    """What two scans of one slot must agree on to be scans of the same artifact (None when
    the report does not say). Trivy artifacts and Trivy SARIF images are compared without
    their tag and digest: every build of an image is the same artifact."""
    if not artifact:
        return None
    if fmt == "trivy" or tool.lower() == "trivy":
        return image_name(artifact)
    return artifact
