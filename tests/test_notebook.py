"""notebooks/quickstart.ipynb: it runs end to end (tiny settings) and shows what it promises.

The committed notebook carries the outputs of one full default run so that people see its
pictures before running it; the slow test executes an in-memory copy with
``FACEGEN_NOTEBOOK_TINY=1`` and never writes the file.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip(
    "nbformat", reason="needs the notebook extra: pip install -e .[notebook]"
)

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"
# Pictures each tagged cell displays (image/png outputs), so a step that silently stops
# showing its picture fails here.
PICTURES = {
    "faces": 1,
    "vae-loss": 1,
    "train-gan": 1,
    "samples": 1,
    "reconstructions": 1,
    "interpolation": 2,
    "edit": 1,
    "latent-map": 1,
}
# The tiny run's slowest cell takes seconds; this only stops a hung kernel.
CELL_TIMEOUT = 300
# The metrics cell's table row: "FID" then one value per model.
FID_ROW = re.compile(r"^FID\s+(\d+\.\d+)\s+(\d+\.\d+)\s*$", re.MULTILINE)


def cells_tagged(notebook, tag: str) -> list:
    return [cell for cell in notebook.cells if tag in cell.metadata.get("tags", [])]


def pictures(cell) -> int:
    return sum("image/png" in output.get("data", {}) for output in cell.get("outputs", []))


def stdout(cell) -> str:
    return "".join(
        output["text"]
        for output in cell.get("outputs", [])
        if output["output_type"] == "stream" and output["name"] == "stdout"
    )


def test_committed_notebook_holds_one_default_run():
    """What GitHub shows: every code cell run once, in order, with the default settings,
    and the file small enough to review."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert not [o for cell in code for o in cell.outputs if o["output_type"] == "error"]
    assert "default settings" in stdout(cells_tagged(notebook, "parameters")[0])
    for tag, count in PICTURES.items():
        assert sum(pictures(cell) for cell in cells_tagged(notebook, tag)) == count, tag
    assert NOTEBOOK.stat().st_size < 1_500_000


@pytest.mark.slow
def test_notebook_runs_end_to_end_with_tiny_settings(tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient", reason="needs the notebook extra (nbclient)")
    pytest.importorskip("ipykernel", reason="no ipykernel in this Python: no kernel to run on")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    committed = hashlib.sha256(NOTEBOOK.read_bytes()).hexdigest()
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # First, which Python the kernel runs: it must be this one (this venv's facegen).
    notebook.cells.insert(0, nbformat.v4.new_code_cell("import sys; print(sys.prefix)"))
    monkeypatch.setenv("FACEGEN_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("FACEGEN_NOTEBOOK_DIR", str(tmp_path / "work"))
    # No kernel folders: only the native kernel, which ipykernel runs on sys.executable, so
    # a user's own "python3" kernelspec cannot send the notebook to another Python.
    kernels = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
    client = nbclient.NotebookClient(
        notebook,
        km=AsyncKernelManager(kernel_name="python3", kernel_spec_manager=kernels),
        timeout=CELL_TIMEOUT,
        startup_timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working folder
    )
    client.execute()  # a failing cell raises CellExecutionError with its traceback

    assert stdout(notebook.cells[0]).strip() == sys.prefix
    assert "tiny settings" in stdout(cells_tagged(notebook, "parameters")[0])
    for tag, count in PICTURES.items():
        assert sum(pictures(cell) for cell in cells_tagged(notebook, tag)) == count, tag
    fid = FID_ROW.search(stdout(cells_tagged(notebook, "metrics")[0]))
    assert fid, "the metrics cell printed no FID row"
    assert all(float(value) > 0 for value in fid.groups())
    assert (tmp_path / "work" / "runs" / "vae" / "metrics.jsonl").is_file()
    assert hashlib.sha256(NOTEBOOK.read_bytes()).hexdigest() == committed
