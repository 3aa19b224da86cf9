"""The portal's shape, read from the source tree (architecture issue 12; docs/architecture.md).

Everything is derived from the files: every module under portal/, compliance/ and deployments/
(migrations excluded) is parsed with ``ast``; nothing is imported, so a shape regression fails here
even when the code still runs. Each rule is one test; a failure lists every offender.

Imports are read two ways:

* **module level** — executed when the module is imported: statements at the top of the module,
  including inside ``if``/``try``/``with`` blocks and class bodies, but not inside functions.
  These build the graph the cycle rule checks.
* **all** — module level plus imports inside functions (``def``/``lambda``) and under
  ``if TYPE_CHECKING:`` (counted as function-local: they never run at import). The layering rules
  ("compliance never imports deployments", "the core never imports an integration") use these: a
  function-local import is still a dependency, moving it into a function only hides it.

``from pkg import name`` points at ``pkg.name`` when that is a module of the project, else at ``pkg``;
relative imports are resolved against the importing module's package.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_PACKAGES = ("portal", "compliance", "deployments")
MAX_LINES = 500
# What may sit at the top of an app package, besides packages: the app-level modules.
APP_LEVEL_MODULES = frozenset({
    "__init__", "apps", "models", "admin", "urls", "choices", "errors", "signals", "tasks", "audit",
    "demo", "context_processors",
})
INTEGRATIONS = "deployments.integrations"
MERGE_MIGRATION = re.compile(r"^\d{4}_(?:.*_)?merge(?:_.*)?\.py$")  # "merge" as a word, not in "emergency"
NOQA_E402 = re.compile(r"#\s*noqa\b[:\s]*[^#\n]*\bE402\b", re.IGNORECASE)


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    local: bool  # inside a function

    def __str__(self) -> str:
        where = "function-local " if self.local else ""
        return f"{self.importer}:{self.line} {where}imports {self.target}"


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module
    imports: list[Import] = field(default_factory=list)

    @property
    def rel(self) -> str:
        return self.path.relative_to(ROOT).as_posix()


def _is_app_source(path: Path) -> bool:
    parts = path.relative_to(ROOT).parts
    return "migrations" not in parts and "__pycache__" not in parts


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


class _ImportCollector(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []
        self._depth = 0

    def _in_function(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _in_function

    def visit_If(self, node: ast.If) -> None:
        # ``if TYPE_CHECKING:`` never runs: counted like a function-local import (a dependency, no cycle).
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            self._depth += 1
            for child in node.body:
                self.visit(child)
            self._depth -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self._depth > 0))

    visit_ImportFrom = visit_Import


def _resolve(module: Module, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """The project modules an import statement points at."""

    def project_module(dotted: str) -> str | None:
        # ``import a.b.c`` where only ``a.b`` is ours (say ``c`` is an attribute): the longest known prefix.
        parts = dotted.split(".")
        while parts:
            candidate = ".".join(parts)
            if candidate in known:
                return candidate
            parts.pop()
        return None

    targets: list[str] = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if (found := project_module(alias.name)) is not None:
                targets.append(found)
        return targets
    if node.level:
        package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
        base_parts = package[: len(package) - (node.level - 1)] if node.level > 1 else package
        base = ".".join(base_parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if submodule in known:
            targets.append(submodule)
        elif (found := project_module(base)) is not None:
            targets.append(found)
    return targets


@cache
def modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for package in APP_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if not _is_app_source(path):
                continue
            name, is_package = _module_name(path)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            found[name] = Module(name=name, path=path, is_package=is_package, tree=tree)
    known = set(found)
    for module in found.values():
        collector = _ImportCollector()
        collector.visit(module.tree)
        seen: set[tuple[str, int, bool]] = set()
        for node, local in collector.found:
            for target in _resolve(module, node, known):
                key = (target, node.lineno, local)
                if target != module.name and key not in seen:
                    seen.add(key)
                    module.imports.append(Import(module.name, target, node.lineno, local))
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _integration_of(name: str) -> str | None:
    """``deployments.integrations.github.x`` → ``deployments.integrations.github``; else None."""
    if not name.startswith(INTEGRATIONS + "."):
        return None
    return ".".join(name.split(".")[:3])


def _graph(*, local: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for module in modules().values():
        for imp in module.imports:
            if local or not imp.local:
                graph[module.name].add(imp.target)
    return graph


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        components.append(sorted(component))
    return components


def _shortest_cycle(graph: dict[str, set[str]], members: list[str], start: str) -> list[str]:
    """The shortest path start → … → start inside one component (breadth first)."""
    inside = set(members)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & inside):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One readable cycle per module of every cyclic component, deduplicated by rotation."""
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for component in _strongly_connected(graph):
        for member in component:
            cycle = _shortest_cycle(graph, component, member)
            key = frozenset(zip(cycle, cycle[1:], strict=False))
            if key not in seen:
                seen.add(key)
                cycles.append(cycle)
    return cycles


def _line_of(importer: str, target: str, *, local: bool | None = None) -> str:
    lines = sorted({imp.line for imp in modules()[importer].imports
                    if imp.target == target and (local is None or imp.local == local)})
    return ",".join(map(str, lines))


def _report(title: str, offenders: list[str]) -> str:
    return f"{title} ({len(offenders)}):\n  " + "\n  ".join(offenders)


# --- the rules -------------------------------------------------------------------------------------


def test_the_tree_is_read():
    """Guard for the rules below: they are only as good as the modules they see."""
    found = modules()
    assert {"portal.settings", "compliance.models", "deployments.models", "deployments.integrations"} <= set(found)
    assert not any("migrations" in name.split(".") for name in found)
    assert sum(len(module.imports) for module in found.values()) > 100


def test_no_import_cycles_at_module_level():
    graph = _graph(local=False)
    cycles = _cycles(graph)
    described = [
        " -> ".join(f"{a} (line {_line_of(a, b, local=False)})" for a, b in zip(cycle, cycle[1:], strict=False))
        + f" -> {cycle[-1]}"
        for cycle in cycles
    ]
    assert not cycles, _report("Module-level import cycles (each arrow: importer (line) -> imported)", described)


def test_function_local_imports_do_not_hide_a_cycle():
    """A function-local import of a project module that would close a cycle if it were at the top is
    a cycle dodged, not removed (docs/architecture.md: no import whose only purpose is to dodge one).

    Celery task modules are the one sanctioned exception: services enqueue tasks (importing the task
    module at the top), and each task loads the service it calls inside its body."""
    graph = _graph(local=False)
    reach: dict[str, set[str]] = {}

    def reachable(start: str) -> set[str]:
        if start not in reach:
            seen, todo = set(), [start]
            while todo:
                for child in graph[todo.pop()]:
                    if child not in seen:
                        seen.add(child)
                        todo.append(child)
            reach[start] = seen
        return reach[start]

    offenders = sorted(
        str(imp)
        for module in modules().values()
        for imp in module.imports
        if imp.local and imp.target not in graph[module.name] and module.name in reachable(imp.target)
        and module.name.rpartition(".")[2] != "tasks"
    )
    assert not offenders, _report(
        "Function-local imports that would close an import cycle at module level", offenders)


@cache
def _portal_modules_that_import_no_app() -> frozenset[str]:
    """portal modules whose imports (all of them, transitively through portal) reach no app module."""
    graph = _graph(local=True)
    leaves = set()
    for name in modules():
        if not _within(name, "portal"):
            continue
        seen, todo, clean = {name}, [name], True
        while todo and clean:
            for child in graph[todo.pop()]:
                if _within(child, "compliance") or _within(child, "deployments"):
                    clean = False
                    break
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        if clean:
            leaves.add(name)
    return frozenset(leaves)


def test_compliance_never_imports_deployments():
    offenders = sorted(
        str(imp) for module in modules().values() if _within(module.name, "compliance")
        for imp in module.imports if _within(imp.target, "deployments")
    )
    assert not offenders, _report("compliance imports deployments (imports point down only)", offenders)


def test_compliance_imports_only_portal_helpers_that_import_no_app():
    allowed = _portal_modules_that_import_no_app()
    offenders = sorted(
        str(imp) for module in modules().values() if _within(module.name, "compliance")
        for imp in module.imports if _within(imp.target, "portal") and imp.target not in allowed
    )
    assert not offenders, _report(
        "compliance imports a portal module that itself (transitively) imports an app; "
        f"allowed portal helpers: {', '.join(sorted(allowed))}", offenders)


def test_the_core_never_imports_an_integration():
    offenders = sorted(
        str(imp) for module in modules().values() if _integration_of(module.name) is None
        for imp in module.imports
        if _integration_of(imp.target) is not None
    )
    assert not offenders, _report(
        f"The core imports an integration (read the {INTEGRATIONS} registries instead)", offenders)


def test_no_app_module_is_over_500_lines():
    offenders = sorted(
        (f"{module.rel}: {count} lines" for module in modules().values()
         if (count := len(module.path.read_text(encoding="utf-8").splitlines())) > MAX_LINES),
    )
    assert not offenders, _report(f"Modules over {MAX_LINES} lines (split them into a package)", offenders)


def test_no_mid_file_imports_silenced_with_noqa_e402():
    offenders = sorted(
        f"{module.rel}:{number}: {line.strip()}"
        for module in modules().values()
        for number, line in enumerate(module.path.read_text(encoding="utf-8").splitlines(), start=1)
        if NOQA_E402.search(line)
    )
    assert not offenders, _report("`# noqa: E402` in app code (import at the top instead)", offenders)


def test_no_merge_migrations():
    offenders = sorted(
        path.relative_to(ROOT).as_posix()
        for package in APP_PACKAGES
        for path in (ROOT / package).rglob("migrations/*.py")
        if MERGE_MIGRATION.match(path.name)
    )
    assert not offenders, _report("Merge migrations (relink the dependency chain instead)", offenders)


def test_app_top_levels_hold_only_packages_and_app_level_modules():
    offenders = []
    for app in ("deployments", "compliance"):
        for entry in sorted((ROOT / app).iterdir()):
            if entry.name == "__pycache__":
                continue
            if entry.is_dir() and (entry / "__init__.py").is_file():
                continue
            if entry.is_file() and entry.suffix == ".py" and entry.stem in APP_LEVEL_MODULES:
                continue
            offenders.append(entry.relative_to(ROOT).as_posix() + ("/" if entry.is_dir() else ""))
    allowed = ", ".join(sorted(APP_LEVEL_MODULES))
    assert not offenders, _report(
        f"Top-level entries that belong in a capability package (allowed modules: {allowed})", offenders)


def test_tests_mirror_the_packages():
    """tests/<package>/ for each deployments capability package (and tests/portal/), tests/compliance/<package>/,
    tests/integrations/<name>/; only shared helpers (and this file) at the root; every folder with Python in
    it is a package, so two ``test_races.py`` in different folders never collide."""
    tests = ROOT / "tests"
    bases = {"portal": ROOT / "portal", "compliance": ROOT / "compliance",
             "integrations": ROOT / "deployments" / "integrations"}
    offenders = [
        f"tests/{path.name}: a test module at the root (move it under the package it tests)"
        for path in sorted(tests.glob("test_*.py")) if path.name != Path(__file__).name
    ]
    # fixtures/ (and everything in it: a test server's own files, its node_modules) is data, not tests
    for folder in sorted(p for p in tests.rglob("*") if p.is_dir() and p.name != "__pycache__"
                         and "fixtures" not in p.relative_to(tests).parts):
        rel = folder.relative_to(tests)
        if any(folder.glob("*.py")) and not (folder / "__init__.py").is_file():
            offenders.append(f"tests/{rel.as_posix()}/: Python files but no __init__.py")
        top, *rest = rel.parts
        source = bases[top].joinpath(*rest) if top in bases else ROOT / "deployments" / rel
        if not (source / "__init__.py").is_file():
            offenders.append(f"tests/{rel.as_posix()}/: no package {source.relative_to(ROOT).as_posix()}/ to mirror")
    assert not offenders, _report("Tests that do not mirror the packages", offenders)


def test_the_cycle_finder_reports_a_known_cycle():
    """The cycle rule's own check, on a made-up graph: a -> b -> c -> a and a self-import d -> d."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "e"}, "d": {"d"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c", "a"], ["d", "d"]]
