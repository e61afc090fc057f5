"""The package's import graph: no cycles, and dependencies that point one way.

Read from the source with ``ast`` (module-level and function-level imports alike), so a lazy
import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bot" / "securecase"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every module name ``path`` imports, relative imports resolved, ``from X import y``
    giving both ``X`` and ``X.y``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (names resolved to the closest module)."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in paths.items():
        targets = set()
        for imported in imported_names(path):
            while imported and imported not in paths:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(imported + "."):
                targets.add(imported)
        edges[name] = targets
    return edges


def external_imports(prefix: str) -> dict[str, set[str]]:
    """Every module under ``prefix`` and all names it imports (package and third-party)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if name == prefix or name.startswith(prefix + "."):
            out[name] = imported_names(path)
    return out


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    edges = graph()
    # cli imports services inside its command functions only
    assert "securecase.services.ingest" in edges["securecase.cli.main"]
    assert "securecase.domain.findings" in edges["securecase.scanners.trivy"]


def test_no_import_cycles() -> None:
    sorter = graphlib.TopologicalSorter(graph())
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


#: What the domain must never import: the CLI, I/O seams and presentation.
DOMAIN_FORBIDDEN = (
    "click",
    "github",  # PyGithub
    "subprocess",
    "securecase.cli",
    "securecase.services",
    "securecase.github",
    "securecase.render",
    "securecase.storage.git",
    "securecase.storage.store",
    "securecase.storage.local",
    "securecase.storage.remote",
    "securecase.storage.repos",
)


def forbidden(imports: dict[str, set[str]], banned: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {name}"
        for module, names in imports.items()
        for name in names
        for ban in banned
        if name == ban or name.startswith(ban + ".")
    )


def test_domain_imports_no_cli_git_github_render_or_services() -> None:
    assert forbidden(external_imports("securecase.domain"), DOMAIN_FORBIDDEN) == []


def test_render_imports_no_services_and_github_no_terminal_renderer() -> None:
    assert forbidden(external_imports("securecase.render"), ("securecase.services",)) == []
    assert forbidden(external_imports("securecase.github"), ("securecase.render.text",)) == []


def test_scanner_parsers_do_not_import_each_other() -> None:
    parsers = ("securecase.scanners.trivy", "securecase.scanners.sarif", "securecase.scanners.zap")
    for parser in parsers:
        others = tuple(p for p in parsers if p != parser)
        assert forbidden(external_imports(parser), others) == [], parser


def test_the_checks_catch_a_bad_import() -> None:
    assert forbidden({"securecase.domain.x": {"securecase.storage.git"}}, DOMAIN_FORBIDDEN) == [
        "securecase.domain.x imports securecase.storage.git"
    ]
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter({"a": {"b"}, "b": {"a"}}).prepare()
