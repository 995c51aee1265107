from pathlib import Path

import pytest

from tests.helpers import copy_workflow, snakemake

LVIS_DATA = Path(__file__).resolve().parents[1] / "data" / "lvis"


@pytest.fixture
def lvis_data() -> Path:
    if not LVIS_DATA.is_dir():
        pytest.fail(f"the LVIS test data is missing: {LVIS_DATA}")
    return LVIS_DATA


def pytest_collection_modifyitems(items):
    """A test of the finished DAG (``finished``) is slow: the fixture runs the whole DAG."""
    for item in items:
        if "finished" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def finished(tmp_path_factory) -> Path:
    """A copy of the workflow after the whole DAG of configs/test.yaml ran locally (shared by
    the workflow and Slurm tests)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("dag"))
    snakemake(workdir, "--configfile", "configs/test.yaml", timeout=900)
    return workdir
