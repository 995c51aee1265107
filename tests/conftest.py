from pathlib import Path

import pytest

SHARED_LVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "lvis"


@pytest.fixture
def shared_lvis() -> Path:
    if not SHARED_LVIS.is_dir():
        pytest.fail(f"the shared LVIS test data is missing: {SHARED_LVIS}")
    return SHARED_LVIS
