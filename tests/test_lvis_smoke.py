"""The real-LVIS configs' DAG end to end on a CPU (scripts/lvis-smoke.sh): downloads from a local
server, unzipping, COCO weights, R50-FPN training, the BAGS head at LVIS width, the federated
evaluation over every category, tables, figures and claims."""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import LVIS_DATA
from tests.helpers import load_script, methods_table

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LVIS_MINI = load_script(ROOT / "scripts" / "lvis_mini.py")


def job_stats(output: str) -> set[str]:
    """The rules of Snakemake's "Job stats" table."""
    rows = output.split("Job stats:")[1].split("total")[0].splitlines()[3:]
    return {row.split()[0] for row in rows if row.strip()}


def kept_methods(version: str) -> dict[str, dict]:
    """The smoke run's methods table: the real config's, less the rows the trim sets to null."""
    methods = methods_table(ROOT, f"configs/lvis_{version}.yaml")
    trim = yaml.safe_load((ROOT / "configs/lvis_smoke_trim.yaml").read_text())["methods"]
    return {name: entry for name, entry in methods.items() if trim.get(name, entry) is not None}


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> Iterator[Path]:
    if not LVIS_DATA.is_dir():
        pytest.fail(f"the LVIS test data is missing: {LVIS_DATA}")
    folder = tmp_path_factory.mktemp("lvis-mini")  # made by the first run, served to both
    yield folder
    shutil.rmtree(folder)


@pytest.mark.slow  # the LVIS configs' DAG on a mini set
@pytest.mark.parametrize("version", ["v0.5", "v1"])
def test_smoke_run_makes_every_output_of_the_real_config(version, mini, tmp_path):
    work = tmp_path / "run"
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "LVIS_STATS": str(LVIS_DATA),
        "LVIS_MINI": str(mini),
        "SMOKE_DIR": str(work),
    }
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "lvis-smoke.sh"), version],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert f"LVIS {version} outputs complete" in output

    exp = work / "results" / f"lvis_{version}"
    groups = json.loads((exp / "groups" / "bags.json").read_text())
    assert groups["num_logits"] == LVIS_MINI.LOGITS[version]
    counts = (exp / "counts" / "longtail.csv").read_text().splitlines()
    assert (
        len(counts) == 1 + LVIS_MINI.CATEGORIES[version]
    )  # every category is evaluated and counted
    runs = {p.parent.parent.name: p for p in exp.glob("runs/longtail/*/seed0/metrics.json")}
    assert set(runs) == set(kept_methods(version))
    for path in runs.values():
        metrics = json.loads(path.read_text())
        assert all(isinstance(metrics[k], float) for k in ("APr", "APc", "APf")), path
    for table in ("comparison", "ablation_groups", "ablation_beta", "ablation_finetune"):
        assert (exp / "tables" / f"{table}.csv").is_file()
    for figure in ("weight_norms", "weight_norms_bags", "weight_norms_methods", "per_bin_ap"):
        assert (exp / "figures" / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"
    assert (exp / "claims.md").is_file()

    # Every rule the whole real config plans ran at least once.
    plan = tmp_path / "plan"
    plan.mkdir()
    shutil.copy(ROOT / "Snakefile", plan)
    for name in ("workflow", "configs", "envs"):
        shutil.copytree(ROOT / name, plan / name)
    dry = subprocess.run(
        [str(BIN / "snakemake"), "-n", "--configfile", f"configs/lvis_{version}.yaml"],
        cwd=plan,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert job_stats(dry.stdout) <= job_stats(output)
    shutil.rmtree(work)  # 3 GB of models and checkpoints; kept when a check fails


def test_trimmed_methods_keep_one_row_of_each_code_path():
    for version in ("v0.5", "v1"):
        kept = kept_methods(version).values()
        assert {m.get("train", "all") for m in kept} == {"all", "box_head", "classifier", "none"}
        trained = [m for m in kept if m.get("train", "all") != "none"]
        assert {m.get("start", "baseline") for m in trained} == {"balanced", "baseline"}
        posthoc = {m["posthoc"] for m in kept if "posthoc" in m}
        assert posthoc == {"tau_norm", "tau_norm_select", "ncm_fc", "ncm_conv"}
