"""The notebooks run top to bottom on the small demo world (they hold no logic of their own)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from serving.demo import DemoReport
from serving.settings import Settings

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]


def test_notebooks_are_stored_without_outputs() -> None:
    assert NOTEBOOKS
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(
    path: Path, demo_home: tuple[Settings, DemoReport], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTECAST_HOME", str(demo_home[0].home))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
