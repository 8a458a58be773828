"""The code's layout: one public face per package, no import cycle, layers checked by import-linter.

The layers themselves are import-linter's contracts (`pyproject.toml`, run by `make test`); this
file checks what import-linter does not: that a package's modules are reached only through its
`__init__`, that every name a face exports exists, and that no module imports itself back.
"""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(
    ".".join(p.parent.relative_to(ROOT).parts)
    for p in (ROOT / "pipeline").rglob("__init__.py")
    if "__pycache__" not in p.parts
)


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(module: str) -> str:
    """The innermost package holding `module` (a package is its own)."""
    return max((p for p in PACKAGES if module == p or module.startswith(p + ".")), key=len)


def _private_reaches(tree: ast.AST, path: Path) -> Iterator[str]:
    """`from X import Y` lines of `path` that reach into another package's private module."""
    here = _module(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    own = _package_of(here) if here.startswith("pipeline") else None
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join([*base, node.module] if node.module else base)
        else:
            target = node.module or ""
        if not target.startswith("pipeline."):
            continue
        if (
            not (ROOT / target.replace(".", "/")).exists()
            and not (ROOT / (target.replace(".", "/") + ".py")).exists()
        ):
            continue  # a module of an older tree (a benchmark measuring one for comparison)
        owner = _package_of(target)
        if owner == own:
            continue
        private = [p for p in target[len(owner) + 1 :].split(".") if p.startswith("_")]
        names = [a.name for a in node.names if a.name.startswith("_")]
        if private or (target == owner and names):
            yield f"{path.relative_to(ROOT)}:{node.lineno}: from {target} import ..."


def _sources(*roots: str) -> Iterator[Path]:
    for root in roots:
        yield from (p for p in (ROOT / root).rglob("*.py") if "__pycache__" not in p.parts)


def test_packages_import_each_other_through_their_public_faces() -> None:
    reaches = [
        line
        for path in _sources("pipeline", "tools", "benchmarks")
        for line in _private_reaches(ast.parse(path.read_text()), path)
    ]
    assert reaches == []


def test_the_check_sees_a_private_reach(tmp_path: Path) -> None:
    """The check above can fail: a runtime module reaching into the state's window module."""
    fake = ROOT / "pipeline" / "runtime" / "_fake.py"
    tree = ast.parse("from ..state._window import Window\nfrom ..state import Window\n")
    assert list(_private_reaches(tree, fake)) == [
        "pipeline/runtime/_fake.py:1: from pipeline.state._window import ..."
    ]


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_has_a_face_that_exports_what_it_names(package: str) -> None:
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", None)
    if exported is None:  # a package with nothing to export says so in its docstring only
        assert module.__doc__, package
        return
    assert sorted(exported) == sorted(set(exported)), package
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == [], package


def test_no_module_imports_itself_back() -> None:
    graph = grimp.build_graph("pipeline", "schemas")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported == module or imported.startswith(module + "."):
                continue  # a package importing its own modules (its face)
            if module.startswith(imported + "."):
                continue  # a module importing its package's face: checked by the layers
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain is not None:
                cycles.append(" -> ".join((module, *chain)))
    assert cycles == []


def test_the_layers_check_fails_on_an_upward_import(tmp_path: Path) -> None:
    """import-linter's contract, run on a copy of the tree with one forbidden import added."""
    copy = tmp_path / "tree"
    for name in ("pipeline", "schemas"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy)
    window = copy / "pipeline" / "state" / "_window.py"
    window.write_text(window.read_text() + "\nfrom ..runtime import Processor  # noqa\n")
    lint = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"]
    ok = subprocess.run(lint, cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout[-2000:]
    broken = subprocess.run(
        lint, cwd=copy, capture_output=True, text=True, env={"PYTHONPATH": str(copy)}
    )
    assert broken.returncode != 0
    assert "pipeline.state is not allowed to import pipeline.runtime" in broken.stdout
