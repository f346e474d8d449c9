"""The house rules of the package layout (the Layout table, docs/operations/development.md), checked against the code itself:
- what setuptools installs is exactly the folders of flows/, tasks/, cli/ and worker/, under prefect_greenlight;
- pure decisions import neither Prefect nor the Kubernetes client, not even indirectly;
- the wings (flows, cli, worker, every tasks/ folder, tasks/errors.py) import one another only in the directions the
  Layout table allows (its "may import" column, parsed here), and the graph of their imports, built from
  every module's imports including those inside functions, has no cycle;
- Kubernetes I/O (tasks/kube/) imports no Prefect;
- no module over 400 lines, no function over 60 lines.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from collections import defaultdict
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"flows": "prefect_greenlight.flows", "tasks": "prefect_greenlight.tasks", "cli": "prefect_greenlight.cli",
           "worker": "prefect_greenlight.worker"}
DECISIONS = sorted(p.stem for p in (ROOT / "tasks" / "decisions").glob("*.py") if p.stem != "__init__")
# Pure decision modules: tasks/decisions/*, and the worker's own (worker/decisions.py).
PURE = {f"tasks/decisions/{m}.py": f"prefect_greenlight.tasks.decisions.{m}" for m in DECISIONS}
PURE["worker/decisions.py"] = "prefect_greenlight.worker.decisions"
FORBIDDEN = ("prefect", "kubernetes")


def _package_folders() -> set[str]:
    out = set()
    for top, name in FOLDERS.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            out.add(".".join([name, *rel.parts]))
    return out


def test_every_package_folder_is_installed_and_nothing_else():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {name: top for top, name in FOLDERS.items()}
    assert set(config["packages"]) == _package_folders()


def test_the_decisions_wing_is_not_empty():
    assert {"rollout", "colors", "endpoints", "traffic", "canary", "undo", "lease", "smoke"} <= set(DECISIONS)


@pytest.mark.parametrize("path", sorted(PURE))
def test_pure_decision_modules_import_no_prefect_and_no_kubernetes_directly(path):
    tree = ast.parse((ROOT / path).read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    bad = [m for m in imported if m.split(".")[0] in FORBIDDEN]
    assert not bad, f"{path} imports {bad}"


def test_pure_decision_modules_pull_in_no_prefect_and_no_kubernetes_at_all():
    """Imported in a fresh interpreter, all of them together: not even a helper they import may bring them."""
    code = ("import sys\n" + "".join(f"import {m}\n" for m in PURE.values())
            + f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(FORBIDDEN)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"importing tasks/decisions pulls in {out.stdout.strip()}"


def _sources():
    for top in FOLDERS:
        yield from sorted((ROOT / top).rglob("*.py"))


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in _sources() if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"


def test_no_function_over_60_lines():
    long = {}
    for p in _sources():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if (n := node.end_lineno - node.lineno + 1) > 60:
                    long[f"{p.relative_to(ROOT)}:{node.name}"] = n
    assert not long, f"functions over 60 lines: {long}"


# The wing graph. A module's wing: flows, cli, worker, tasks/<folder>, or tasks/errors (tasks/errors.py).
TOP_WINGS = ("flows", "cli", "worker")
# Edges the code still has that the Layout table does not allow, each with the work that removes it.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


def _wing(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "prefect_greenlight" or len(parts) < 2:
        return None
    if parts[1] != "tasks":
        return parts[1]
    return f"tasks/{parts[2]}" if len(parts) > 2 else None


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
    return ".".join([FOLDERS[parts[0]], *parts[1:]])


def _imported(name: str, source: str, is_package: bool = False) -> list[tuple[str, int]]:
    """Every module the module `name` imports, anywhere in it (function bodies included), with its line."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            # `from prefect_greenlight.tasks import errors` imports the module tasks.errors
            out += [(f"{base}.{a.name}" if _wing(base) is None else base, node.lineno) for a in node.names]
    return out


def _wing_graph() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in _sources():
        src = _wing(_module_name(path))
        for module, line in _imported(_module_name(path), path.read_text(), path.name == "__init__.py"):
            dst = _wing(module)
            if src and dst and dst != src:
                edges[(src, dst)].append(f"{path.relative_to(ROOT)}:{line}")
    return dict(edges)


def _wings_in_code() -> set[str]:
    return {w for p in _sources() if (w := _wing(_module_name(p)))}


def _layout_table() -> dict[str, set[str]]:
    """The Layout table (docs/operations/development.md): {wing: the wings its "may import" column names}. The
    column lists wings before its first `;`
    (comma-separated, remarks in parentheses; `tasks` = every tasks/ wing; `—` none)."""
    text = (ROOT / "docs" / "operations" / "development.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    tasks_wings = {w for w in _wings_in_code() if w.startswith("tasks/")}
    table = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) != 4 or cells[1] == "—":
            continue
        wing = cells[0].strip("`").removesuffix("/").removesuffix(".py")
        allowed: set[str] = set()
        for entry in re.sub(r"\([^)]*\)", "", cells[3].split(";")[0]).split(","):
            entry = entry.strip().strip("`")
            if entry in ("", "—"):
                continue
            if entry == "tasks":
                allowed |= tasks_wings
            else:
                allowed.add(entry if entry in TOP_WINGS else f"tasks/{entry}")
        table[wing] = allowed
    return table


def test_the_layout_table_has_one_row_per_wing_and_names_only_wings():
    table, wings = _layout_table(), _wings_in_code()
    assert set(table) == wings, f"Layout table rows {sorted(table)} != the code's wings {sorted(wings)}"
    unknown = {w: sorted(allowed - wings) for w, allowed in table.items() if allowed - wings}
    assert not unknown, f"Layout table names wings that do not exist: {unknown}"


def test_the_allowed_directions_have_no_cycle():
    table = _layout_table()
    try:
        order = list(TopologicalSorter(table).static_order())
    except CycleError as exc:
        pytest.fail(f"Layout table allows a cycle: {exc.args[1]}")
    assert order[0] == "tasks/errors"


def test_every_import_between_wings_is_allowed_by_the_readme():
    table = _layout_table()
    bad = {f"{a} -> {b}": where[:3] for (a, b), where in _wing_graph().items()
           if b not in table.get(a, set()) and (a, b) not in KNOWN_EXCEPTIONS}
    assert not bad, f"imports the Layout table table does not allow: {bad}"


def test_the_import_graph_between_wings_has_no_cycle():
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in _wing_graph():
        if (a, b) not in KNOWN_EXCEPTIONS:
            graph[a].add(b)
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"wings import one another in a cycle: {exc.args[1]}")


def test_the_graph_reader_sees_imports_inside_functions_and_relative_ones():
    source = ("import json\n"
              "def f():\n    from prefect_greenlight.tasks import errors\n"
              "class C:\n    def g(self):\n        from ..record.report import say\n")
    found = [(_wing(m), line) for m, line in _imported("prefect_greenlight.tasks.kube.lease", source)]
    assert found == [(None, 1), ("tasks/errors", 3), ("tasks/record", 6)]


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tasks" / "kube").glob("*.py")))
def test_kubernetes_io_imports_no_prefect(path):
    """tasks/kube/: no Prefect (and, by the table, no record); a named cluster block is read through
    prefect-kubernetes' block class in credentials, a separate package and the [blocks] extra."""
    tree = ast.parse((ROOT / path).read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m.split(".")[0] == "prefect"], f"{path} imports Prefect"


def test_every_flow_is_under_100_lines():
    """A flow reads like the tutorial's numbered steps; the work is its strategy's list of steps (tasks/)."""
    long = {p.name: n for p in sorted((ROOT / "flows").glob("*.py")) if (n := len(p.read_text().splitlines())) >= 100}
    assert not long, f"flows of 100 lines or more: {long}"
