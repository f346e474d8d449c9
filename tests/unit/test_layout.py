"""The house rules of the package layout (README "Layout"), checked against the code itself:
- what setuptools installs is exactly the folders of flows/, tasks/, cli/ and worker/, under prefect_greenlight;
- pure decisions import neither Prefect nor the Kubernetes client, not even indirectly;
- no module over 400 lines, no function over 60 lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
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
