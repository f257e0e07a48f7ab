"""Every notebook runs top to bottom offline, and is committed without outputs."""

import json
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FIXTURES = pathlib.Path(__file__).parent / "fixtures"

# Offline parameters: tiny preset, fixtures, a handful of steps. The
# notebooks' own defaults are the real thing (gpt2_base_en, tfds.load, ...).
def offline_parameters(name, work_dir):
    from reddit_tifu_cache import prepare_download_cache

    return {
        "01_quickstart.ipynb": {"PRESET": "gpt2_tiny_random", "SEQUENCE_LENGTH": 64,
                                "MAX_LENGTH": 24, "BENCH_NEW_TOKENS": 4},
        "02_finetune_reddit.ipynb": {
            "PRESET": "gpt2_tiny_random", "BATCH_SIZE": 2, "STEPS": 2,
            "SEQUENCE_LENGTH": 32, "MAX_LENGTH": 24,
            "DATA_DIR": str(prepare_download_cache(work_dir / "tfds")),
        },
        "03_finetune_tang_poems.ipynb": {
            "PRESET": "gpt2_tiny_random", "POETRY_PATH": str(FIXTURES / "tang"),
            "LIMIT": 40, "SEQUENCE_LENGTH": 32, "BATCH_SIZE": 2, "STEPS": 2, "MAX_LENGTH": 24,
        },
        "04_samplers.ipynb": {"PRESET": "gpt2_tiny_random", "MAX_LENGTH": 20, "LOOP_STEPS": 2},
        "05_benchmark.ipynb": {"PRESET": "gpt2_tiny_random", "BATCH_SIZES": [1],
                               "SAMPLERS": ["greedy"], "NEW_TOKENS": 4, "TRAIN": (2, 16)},
    }[name]


def test_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_finetune_reddit.ipynb",
        "03_finetune_tang_poems.ipynb",
        "04_samplers.ipynb",
        "05_benchmark.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    notebook = json.loads(path.read_text("utf-8"))
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name} cell {index} has outputs"
            assert cell.get("execution_count") is None, f"{path.name} cell {index}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_parameters_cell(path):
    notebook = json.loads(path.read_text("utf-8"))
    tagged = [c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_installs_kgpt2_only_when_missing(path):
    first = json.loads(path.read_text("utf-8"))["cells"][0]
    source = "".join(first["source"])
    assert first["cell_type"] == "code"
    assert 'find_spec("kgpt2") is None' in source and '"pip", "install"' in source
    assert "only-if-needed" in source and '"kgpt2"' in source


def test_parameters_are_used():
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text("utf-8"))["cells"]
        parameters = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
        rest = "".join("".join(c["source"]) for c in cells if c is not parameters)
        for line in parameters["source"]:
            name = line.split("=")[0].strip()
            assert name in rest, f"{path.name}: parameter {name} is never used"


def _inject(notebook, parameters):
    """Insert papermill-style injected parameters after the `parameters` cell."""
    import nbformat

    index = next(
        i for i, c in enumerate(notebook.cells)
        if "parameters" in c.metadata.get("tags", [])
    )
    source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(index + 1, cell)


@pytest.fixture(scope="module")
def kernel():
    """One Python kernel for the notebooks: it imports TensorFlow and JAX once.

    Each notebook starts with `%reset -f` (an empty namespace, as in a new
    kernel); what stays is imported modules, which is what is slow to load.
    """
    from jupyter_client import KernelManager

    manager = KernelManager(kernel_name="python3")
    # The kernel must import the kgpt2 under test, installed or not.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    manager.start_kernel(env=dict(os.environ, PYTHONPATH=path))
    try:
        yield manager
    finally:
        manager.shutdown_kernel(now=True)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_runs_top_to_bottom_offline(path, tmp_path, kernel):
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    parameters = offline_parameters(path.name, tmp_path)
    parameters["WORK_DIR"] = str(tmp_path)
    _inject(notebook, parameters)
    fresh = f"%reset -f\nimport os\nos.chdir({str(tmp_path)!r})\ndel os"
    notebook.cells.insert(0, nbformat.v4.new_code_cell(fresh))
    client = nbclient.NotebookClient(notebook, km=kernel, timeout=240, kernel_name="python3")
    try:
        client.execute()
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
