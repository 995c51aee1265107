"""The tiny DAG through a real Slurm with profiles/slurm gives the metrics of a local run.

Needs a running Slurm (`bash scripts/local-slurm.sh` starts a one-node one; `.ci/run` does).
"""

import json
import re
import shutil
import subprocess

import pytest

from tests.test_workflow import copy_workflow, snakemake


def slurm_is_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    result = subprocess.run(["sinfo", "--noheader"], capture_output=True, text=True)
    return result.returncode == 0 and bool(result.stdout.strip())


pytestmark = pytest.mark.skipif(
    not slurm_is_up(), reason="no Slurm on this machine: `bash scripts/local-slurm.sh` starts one"
)


def test_tiny_dag_through_slurm_matches_a_local_run(tmp_path):
    local = copy_workflow(tmp_path / "local")
    snakemake(local, "claims", "--configfile", "configs/test.yaml")
    cluster = copy_workflow(tmp_path / "slurm")
    result = snakemake(
        cluster,
        "claims",
        "--profile",
        "profiles/slurm",
        "--configfile",
        "configs/test.yaml",
        timeout=1500,
    )
    log = result.stdout + result.stderr
    submitted = set(re.findall(r"slurm_logs/rule_(\w+)/", log))
    expected = {"synthesize", "train", "cache_features", "fit_head", "infer", "evaluate"}
    assert expected <= submitted, log
    assert "rule_count/" not in log  # light rules stay local
    exp = "results/test/runs/longtail"
    for method in ("baseline", "bags"):
        ours = json.loads((cluster / exp / method / "seed0" / "metrics.json").read_text())
        theirs = json.loads((local / exp / method / "seed0" / "metrics.json").read_text())
        assert ours == theirs, method
