"""The tiny DAG through a real Slurm with profiles/slurm gives the results of a local run.

Needs a running Slurm (`bash scripts/local-slurm.sh` starts a one-node one; `.ci/run` does).
The local run is the session fixture ``finished`` (tests/conftest.py), shared with the
workflow tests.
"""

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest

from tests.helpers import copy_workflow, snakemake


def slurm_is_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    result = subprocess.run(["sinfo", "--noheader"], capture_output=True, text=True)
    return result.returncode == 0 and bool(result.stdout.strip())


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not slurm_is_up(),
        reason="no Slurm on this machine: `bash scripts/local-slurm.sh` starts one",
    ),
]


def every_run(workdir):
    """metrics.json of every run, by its folder under runs/."""
    runs = workdir / "results" / "test" / "runs"
    return {
        str(path.parent.relative_to(runs)): json.loads(path.read_text())
        for path in sorted(runs.glob("*/*/seed*/metrics.json"))
    }


def test_tiny_dag_through_slurm_matches_a_local_run(finished, tmp_path):
    cluster = copy_workflow(tmp_path / "slurm")
    result = snakemake(
        cluster, "--profile", "profiles/slurm", "--configfile", "configs/test.yaml", timeout=2400
    )
    log = result.stdout + result.stderr
    submitted = set(re.findall(r"slurm_logs/rule_(\w+)/", log))
    expected = {"synthesize", "train", "cache_features", "fit_head", "posthoc", "infer"}
    expected |= {"evaluate"}
    assert expected <= submitted, log
    assert "rule_count/" not in log  # light rules stay local
    ours, theirs = every_run(cluster), every_run(finished)
    # Every run of the tiny config: its 16 methods on the long-tailed set.
    assert len(theirs) == 16 and all(run.startswith("longtail/") for run in theirs)
    assert ours.keys() == theirs.keys()
    for run in theirs:
        assert ours[run] == theirs[run], run
    for table in ("comparison", "ablation_groups", "ablation_beta", "ablation_finetune"):
        csv = f"results/test/tables/{table}.csv"
        pd.testing.assert_frame_equal(pd.read_csv(cluster / csv), pd.read_csv(finished / csv))
