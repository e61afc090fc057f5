"""Keep credentials of the scanned application out of stored ZAP reports.

ZAP reports made with requests and responses carry the HTTP traffic of the scan: session
cookies, bearer tokens, API keys, login form bodies. The stored raw copy keeps the traffic
but not those values: sensitive header values and request bodies are masked, and query
parameter values in instance URIs are removed (as in the case file). A report without any
of them is stored byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from securecase.scanners.trivy_mask import MASK

#: Request and response headers whose values are credentials or session state.
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-access-token",
        "x-csrf-token",
        "x-xsrf-token",
        "x-amz-security-token",
        "private-token",
    }
)


def mask_headers(text: str) -> str:
    """HTTP header lines with the values of :data:`SENSITIVE_HEADERS` masked."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        name, sep, _ = line.partition(":")
        if sep and name.strip().lower() in SENSITIVE_HEADERS:
            ending = line[len(line.rstrip("\r\n")) :]
            lines[index] = f"{name}: {MASK}{ending}"
    return "".join(lines)


def _field_masker(name: str, strip_query: Callable[[str], str]) -> Callable[[str], str] | None:
    """How to mask a field of an alert instance, by its name (None: keep it)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key.endswith("header"):
        return mask_headers
    if key == "requestbody":
        return lambda text: MASK if text.strip() else text
    if key == "uri":
        return strip_query
    return None


def masked_json(document: dict[str, Any], strip_query: Callable[[str], str]) -> bytes | None:
    """The report re-serialized with traffic secrets masked (mutates ``document``).

    None when nothing needed masking, so the original bytes are stored.
    """
    changed = False
    for site in document.get("site") or ():
        for alert in (site.get("alerts") or ()) if isinstance(site, dict) else ():
            if not isinstance(alert, dict):
                continue
            # Reports before ZAP 2.8 hold an instance's fields in the alert itself.
            holders = [alert, *(alert.get("instances") or ())]
            for holder in holders:
                if not isinstance(holder, dict):
                    continue
                for name, value in holder.items():
                    masker = _field_masker(name, strip_query)
                    if masker is not None and isinstance(value, str):
                        masked = masker(value)
                        if masked != value:
                            holder[name] = masked
                            changed = True
    if not changed:
        return None
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def masked_xml(root: Any, strip_query: Callable[[str], str]) -> bytes | None:
    """The XML report re-serialized with traffic secrets masked (mutates the ``root`` tree).

    None when nothing needed masking, so the original bytes are stored.
    """
    from xml.etree import ElementTree

    changed = False
    # Reports before ZAP 2.8 hold an instance's fields in the alert item itself.
    for holder in (*root.iter("instance"), *root.iter("alertitem")):
        for field in holder:
            masker = _field_masker(str(field.tag), strip_query)
            if masker is not None and field.text:
                masked = masker(field.text)
                if masked != field.text:
                    field.text = masked
                    changed = True
    if not changed:
        return None
    body: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"
