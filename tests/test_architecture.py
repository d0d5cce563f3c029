"""The import contracts of docs/ARCHITECTURE.md hold, and would catch a forbidden import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOMS = ("routing", "features", "training", "serving", "simulation")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", "pyproject.toml", "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy(tmp_path: Path) -> Path:
    for room in ROOMS:
        shutil.copytree(REPO / room, tmp_path / room, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint_imports(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("package", ["pandas", "feast", "mlflow", "fastapi"])
def test_routing_importing_a_forbidden_package_breaks_the_build(
    tmp_path: Path, package: str
) -> None:
    root = _copy(tmp_path)
    with (root / "routing" / "geo.py").open("a", encoding="utf-8") as fh:
        fh.write(f"\nimport {package}  # noqa: E402, F401\n")
    result = _lint_imports(root)
    assert result.returncode == 1
    assert f"routing.geo -> {package}" in result.stdout
