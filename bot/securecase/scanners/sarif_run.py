"""One run of a SARIF log: its tool, rules (driver and extensions), artifacts, URI bases."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from securecase.domain.findings import Kind
from securecase.scanners import sarif_fields as fields
from securecase.scanners.jsonload import Problems, short_repr, type_name
from securecase.scanners.sarif_fields import Where
from securecase.scanners.sarif_meta import cwes

_SLUG = re.compile(r"[^a-z0-9._-]+")
#: Tools whose every result is a leaked secret or an infrastructure misconfiguration.
SECRET_TOOLS = frozenset(
    {"gitleaks", "trufflehog", "detect-secrets", "ggshield", "secretlint", "talisman", "kingfisher"}
)
#: Dynamic scanners: their results are located at the URLs they tested.
DAST_TOOLS = frozenset({"zap", "owasp-zap", "zaproxy", "nuclei"})
IAC_TOOLS = frozenset(
    {
        "checkov",
        "tfsec",
        "kics",
        "terrascan",
        "dockle",
        "hadolint",
        "kube-linter",
        "kubesec",
        "cfn-lint",
        "cfn_nag",
        "tflint",
        "trivy-config",
    }
)
#: Trivy's SARIF rule names say what each rule is about.


WEB_SCHEMES = frozenset({"http", "https"})


def tool_slug(name: str) -> str:
    """A tool name as a source slot name: ``Shell Script Analysis`` → ``shell-script-analysis``."""
    return _SLUG.sub("-", name.lower()).strip("-._")[:63].rstrip("-._")


class Run:
    """What results of one run look things up in: rules, artifacts, URI base ids."""

    __slots__ = (
        "artifacts",
        "bases",
        "component_ids",
        "components",
        "cwes_of_rule",
        "index",
        "kind",
        "paths",
        "rule_id_lengths",
        "rules_by_id",
        "tool",
        "workdir",
    )

    def __init__(self, run: dict[str, Any], index: int, problems: Problems) -> None:
        where: Where = ("runs", index)
        self.index = index
        tool = fields.obj(run, "tool", where, problems, required=True) or {}
        driver = fields.obj(tool, "driver", (*where, "tool"), problems, required=True) or {}
        name = fields.string(driver, "name", (*where, "tool", "driver"), problems, required=True)
        self.tool = name or "sarif"
        self.components: list[list[Any]] = [
            fields.array(driver, "rules", (*where, "tool", "driver"), problems)
        ]
        # (guid, name) of the driver and of each extension, for references that name them
        self.component_ids: list[tuple[object, object]] = [(driver.get("guid"), name)]
        extensions = fields.array(tool, "extensions", (*where, "tool"), problems)
        for e_index, extension in enumerate(extensions):
            e_where: Where = (*where, "tool", "extensions", e_index)
            if not isinstance(extension, dict):
                problems.add(e_where, f"expected an object, got {type_name(extension)}")
                self.components.append([])
                self.component_ids.append((None, None))
                continue
            self.components.append(fields.array(extension, "rules", e_where, problems))
            self.component_ids.append((extension.get("guid"), extension.get("name")))
        self.rules_by_id: dict[str, dict[str, Any]] = {}
        for component in reversed(self.components):  # the driver's rules win over extensions'
            for rule in component:
                if isinstance(rule, dict) and isinstance(rule.get("id"), str):
                    self.rules_by_id[rule["id"]] = rule
        #: the lengths of the rule ids, longest first: a message's prefixes of these lengths
        #: are looked up instead of testing every rule id against every message
        self.rule_id_lengths = sorted({len(rule_id) for rule_id in self.rules_by_id}, reverse=True)
        self.artifacts = fields.array(run, "artifacts", where, problems)
        bases = fields.obj(run, "originalUriBaseIds", where, problems) or {}
        self.bases: dict[str, Any] = bases
        self.kind = tool_kind(tool_slug(self.tool))
        # rule metadata is shared by many results: its CWEs are worked out once per rule
        self.cwes_of_rule: dict[int, tuple[str, ...]] = {}
        self.paths: dict[tuple[str, str | None], str] = {}
        self.workdir = _working_directory(run)

    def rule_cwes(self, rule: dict[str, Any], properties: Mapping[str, Any]) -> tuple[str, ...]:
        """The CWEs a rule's properties name (cached per rule object)."""
        found = self.cwes_of_rule.get(id(rule))
        if found is None:
            found = self.cwes_of_rule[id(rule)] = cwes(properties)
        return found

    def rule(
        self, result: dict[str, Any], where: Where, problems: Problems
    ) -> tuple[str | None, dict[str, Any]]:
        """The result's rule id and rule metadata (empty when the log has none)."""
        rule_id = fields.string(result, "ruleId", where, problems)
        component = 0
        rule_index = result.get("ruleIndex")
        index_where: Where = (*where, "ruleIndex")
        reference = result.get("rule")
        if reference is not None:
            if not isinstance(reference, dict):
                problems.add((*where, "rule"), f"expected an object, got {type_name(reference)}")
                reference = {}
            rule_id = rule_id or fields.string(reference, "id", (*where, "rule"), problems)
            if "index" in reference:
                rule_index, index_where = reference["index"], (*where, "rule", "index")
            tool_component = reference.get("toolComponent")
            if isinstance(tool_component, dict):
                found_component = self._component(tool_component, where, problems)
                if found_component is None:
                    return rule_id, {}
                component = found_component
        metadata: dict[str, Any] = {}
        if rule_index is not None and rule_index != -1:
            rules = self.components[component]
            if type(rule_index) is not int or not 0 <= rule_index < len(rules):
                problems.add(
                    index_where,
                    f"{short_repr(rule_index)} is out of range: the tool component lists "
                    f"{len(rules)} rules",
                )
                return rule_id, {}
            found = rules[rule_index]
            if isinstance(found, dict):
                metadata = found
        elif rule_id is not None:
            metadata = self.rules_by_id.get(rule_id) or self.rules_by_id.get(
                rule_id.split("/", 1)[0], {}
            )
        if rule_id is None and isinstance(metadata.get("id"), str):
            rule_id = metadata["id"]
        return rule_id, metadata

    def _component(self, reference: dict[str, Any], where: Where, problems: Problems) -> int | None:
        """The component a ``toolComponentReference`` names (0 the driver, else 1 + the
        extension's index): by ``index`` into the extensions, else by ``guid``, else by
        ``name``; None (a problem) when it names none of them."""
        c_where: Where = (*where, "rule", "toolComponent")
        if "index" in reference:
            c_index = reference["index"]
            if type(c_index) is not int or not 0 <= c_index < len(self.components) - 1:
                problems.add(
                    (*c_where, "index"),
                    f"{short_repr(c_index)} does not name one of the run's "
                    f"{len(self.components) - 1} tool extensions",
                )
                return None
            return c_index + 1
        for position, key in ((0, "guid"), (1, "name")):
            wanted = reference.get(key)
            if wanted is None:
                continue
            for component, ids in enumerate(self.component_ids):
                if ids[position] == wanted:
                    return component
            problems.add(
                (*c_where, key),
                f"{short_repr(wanted)} names neither the driver nor one of the run's "
                f"{len(self.components) - 1} tool extensions",
            )
            return None
        return 0

    def path(self, location: dict[str, Any], where: Where, problems: Problems) -> str | None:
        """The artifact's path relative to the scanned repository, when the log says."""
        artifact = fields.obj(location, "artifactLocation", where, problems)
        if artifact is None:
            return None
        a_where: Where = (*where, "artifactLocation")
        uri = fields.string(artifact, "uri", a_where, problems)
        base = fields.string(artifact, "uriBaseId", a_where, problems)
        index = artifact.get("index")
        if uri is None and type(index) is int and 0 <= index < len(self.artifacts):
            listed = self.artifacts[index]
            listed_location = listed.get("location") if isinstance(listed, dict) else None
            if isinstance(listed_location, dict) and isinstance(listed_location.get("uri"), str):
                uri = listed_location["uri"]
                base = base or listed_location.get("uriBaseId")
        if uri is None:
            return None
        path = self.paths.get((uri, base))
        if path is None:  # many results share a file: resolve each URI once
            path = self.paths[(uri, base)] = relative_path(uri, base, self.bases, self.workdir)
        if len(path) > fields.FIELD_LIMIT:
            problems.add((*a_where, "uri"), f"longer than the {fields.FIELD_LIMIT} allowed")
            return None
        return path or None


def tool_kind(slug: str) -> Kind:
    if slug in SECRET_TOOLS:
        return Kind.SECRET
    if slug in IAC_TOOLS:
        return Kind.MISCONFIGURATION
    if slug in DAST_TOOLS:
        return Kind.DAST
    return Kind.CODE


def _working_directory(run: Mapping[str, Any]) -> str | None:
    """The absolute URI of the first invocation's working directory (the checkout, usually)."""
    invocations = run.get("invocations")
    first = invocations[0] if isinstance(invocations, list) and invocations else None
    directory = first.get("workingDirectory") if isinstance(first, dict) else None
    uri = directory.get("uri") if isinstance(directory, dict) else None
    if isinstance(uri, str) and urlsplit(uri).scheme == "file":
        return uri
    return None


def relative_path(
    uri: str, base: str | None, bases: Mapping[str, Any], workdir: str | None = None
) -> str:
    """Resolve ``uri`` against its chain of relative ``uriBaseId`` prefixes.

    The chain stops at an absolute URI (the checkout root on the build machine), so the path
    stays relative to the repository; an absolute file URI under that root, or else under the
    tool's working directory (``workdir``), is made relative.
    """
    prefixes: list[str] = []
    root: str | None = None
    seen: set[str] = set()
    while base and base not in seen:
        seen.add(base)
        entry = bases.get(base)
        if not isinstance(entry, dict) or not isinstance(entry.get("uri"), str):
            break
        base_uri = entry["uri"].strip()
        if urlsplit(base_uri).scheme or base_uri.startswith("/"):
            root = base_uri
            break
        prefixes.append(base_uri)
        next_base = entry.get("uriBaseId")
        base = next_base if isinstance(next_base, str) else None
    root = root or workdir
    if root:
        root = root if root.endswith("/") else root + "/"
        if uri.startswith(root):
            uri = uri[len(root) :]
        else:  # the same root spelled with other percent-encoding ("my%20repo", "my repo")
            decoded, decoded_root = unquote(uri), unquote(root)
            if decoded.startswith(decoded_root):
                uri = quote(decoded[len(decoded_root) :], safe="/")
    for prefix in prefixes:
        uri = prefix.rstrip("/") + "/" + uri if prefix else uri
    split = urlsplit(uri)
    if split.scheme in WEB_SCHEMES:
        return uri  # a tested URL (DAST), not a file: kept as it is, made a location URL
    path = split.path if split.scheme == "file" else uri
    path = unquote(path)
    if split.scheme != "file" and split.scheme:
        return path
    normalized = posixpath.normpath(path) if path else path
    return normalized.removeprefix("./") if normalized != "." else ""
