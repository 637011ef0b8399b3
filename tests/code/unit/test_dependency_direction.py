"""The import rule of docs/design.md ("Layout and dependency direction"), checked on every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
# Package -> top-level packages of this repository it must never import.
FORBIDDEN = {
    "pyfunc": {"steps", "harness", "bench", "scripts", "tests"},
    "steps": {"harness", "bench", "scripts", "tests"},
    "harness": {"bench", "scripts", "tests"},
    "bench": {"tests"},
    "scripts": {"tests"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of the absolute imports in a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_against_the_dependency_direction(package: str):
    breaches = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in sorted((REPO / package).rglob("*.py"))
        for name in sorted(imported_packages(path) & FORBIDDEN[package])
    ]
    assert breaches == []


def test_the_check_sees_an_import_against_the_direction(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("import os\nfrom tests.code.telemetry import x\nfrom . import sibling\n")
    assert imported_packages(module) & FORBIDDEN["bench"] == {"tests"}
