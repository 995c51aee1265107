"""`snakemake --use-conda` with a conda stand-in (tests/conda_standin): the environment is built
from Snakemake's copy of envs/bags.yaml in .snakemake/conda/, and every job runs inside it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STANDIN = ROOT / "tests" / "conda_standin"


def copy_workflow_with_source(dest: Path) -> Path:
    """The workflow and the package's source, nothing installed from it."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("workflow", "configs", "envs", "src"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_environment_file_holds_no_path():
    """Snakemake builds the file from a copy elsewhere: a path in it would point elsewhere."""
    spec = yaml.safe_load((ROOT / "envs" / "bags.yaml").read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    assert all("==" in line and "/" not in line for line in pip), pip


@pytest.mark.slow  # builds the environment and runs the tiny DAG in it
def test_use_conda_runs_the_tiny_dag_in_the_environment(tmp_path):
    workdir = copy_workflow_with_source(tmp_path / "work flow")  # a space: quoted
    # Only the stand-in and the system's tools on PATH: a job that ran outside the environment
    # would find no `python` (Debian has python3 only) or no torch.
    env = {
        "PATH": f"{STANDIN / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp_path),
        "CONDA_STANDIN_PYTHON": sys.executable,
    }
    command = [str(BIN / "snakemake"), "--use-conda", "--cores", "2"]
    command += ["--configfile", "configs/test.yaml"]
    result = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    copies = list((workdir / ".snakemake" / "conda").glob("*.yaml"))
    assert len(copies) == 1
    prefix = copies[0].with_suffix("")
    assert (prefix / "bin" / "python").is_file()
    assert "Activating conda environment" in result.stderr
    # The environment holds the dependencies only; the jobs took the package from src/.
    bare = subprocess.run([prefix / "bin" / "python", "-c", "import bags"], env=env)
    assert bare.returncode != 0
    claims = workdir / "results" / "test" / "claims.md"
    assert claims.is_file()
    metrics = workdir / "results/test/runs/longtail/bags/seed0/metrics.json"
    assert "APr" in json.loads(metrics.read_text())
