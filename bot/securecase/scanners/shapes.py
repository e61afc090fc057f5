"""What a parsed document looks like: cheap checks the registry runs on every report.

They live apart from the parsers so that detecting a report loads only the parser it needs.
"""

from __future__ import annotations


def looks_like_sarif(document: object) -> bool:
    """True for a JSON object that claims to be a SARIF log (any version)."""
    if not isinstance(document, dict):
        return False
    schema = document.get("$schema")
    if isinstance(schema, str) and "sarif" in schema.lower():
        return True
    return "runs" in document and "version" in document


def looks_like_zap_json(document: object) -> bool:
    """True for a JSON object shaped like ZAP's traditional JSON report."""
    if not isinstance(document, dict):
        return False
    site = document.get("site")
    return (
        "@generated" in document
        or "@programName" in document
        or (
            isinstance(site, list) and any(isinstance(s, dict) and "alerts" in s for s in site[:20])
        )
    )
