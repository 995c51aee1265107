from pathlib import Path

import pytest

from tests.helpers import copy_workflow, snakemake

SHARED_LVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "lvis"


@pytest.fixture
def shared_lvis() -> Path:
    if not SHARED_LVIS.is_dir():
        pytest.fail(f"the shared LVIS test data is missing: {SHARED_LVIS}")
    return SHARED_LVIS


@pytest.fixture(scope="session")
def finished(tmp_path_factory) -> Path:
    """A copy of the workflow after the whole DAG of configs/test.yaml ran locally (shared by
    the workflow and Slurm tests)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("dag"))
    snakemake(workdir, "--configfile", "configs/test.yaml", timeout=900)
    return workdir
