"""`examples/notebooks/readmission.ipynb`, executed headless: it must finish with no error cell."""

import os
import time
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebooks" / "readmission.ipynb"


def test_the_readmission_notebook_runs_without_an_error_cell(tmp_path):
    if os.environ.get("FEDCARE_REQUIRE_NOTEBOOK") == "1":
        import nbclient
        import nbformat
    else:
        nbclient = pytest.importorskip("nbclient", reason="SKIPPED: nbclient is not installed (pip install './python[notebook]')")
        nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError at the first error cell
    seconds = time.perf_counter() - start
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, errors
    images = sum(
        "image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert images >= 3, "the exploration, per-round and calibration plots"
    executed = tmp_path / "readmission.executed.ipynb"
    nbformat.write(notebook, executed)
    print(f"notebook: {len([c for c in notebook.cells if c.cell_type == 'code'])} code cells in {seconds:.1f} s, {images} plots, written to {executed}")
