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


def sarif_capable_json(document: object) -> tuple[str, str] | None:
    """(tool, the command that writes SARIF instead) for the JSON of a scanner that can write
    SARIF: checkov (one framework: an object; several: a list of them), Grype, OSV-Scanner."""
    if isinstance(document, list):
        first = document[0] if document else None
        return _checkov(first) if isinstance(first, dict) else None
    if not isinstance(document, dict):
        return None
    if "matches" in document and "descriptor" in document:
        return "Grype", "grype -o sarif"
    results = document.get("results")
    if isinstance(results, list) and results and isinstance(results[0], dict):
        if "packages" in results[0] and "source" in results[0]:
            return "OSV-Scanner", "osv-scanner --format sarif"
    return _checkov(document)


def _checkov(document: dict[str, object]) -> tuple[str, str] | None:
    results = document.get("results")
    if "check_type" in document and (isinstance(results, dict) or "summary" in document):
        return "checkov", "checkov -o sarif"
    return None
