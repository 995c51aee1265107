"""Small datasets and models made on the fly for tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from torch.optim.optimizer import register_optimizer_step_post_hook

from bags.data.synthetic import SyntheticSpec, generate

TINY_SPEC = {"train_counts": [[2, 2, 3], [2, 10, 12], [1, 30, 30]], "val_per_class": 2, "seed": 3}
TINY_ARCH = {"name": "small", "channels": 8, "layers": 2, "representation": 32}
TINY_TRAIN = {"epochs": 2, "batch_size": 8, "lr": 0.01, "warmup_iters": 2}


def make_tiny_dataset(root: Path) -> Path:
    generate(SyntheticSpec(**TINY_SPEC), root)
    return root


def counts_file(root: Path) -> Path:
    """The counts CSV of a tiny dataset's training file (made once, beside it)."""
    from bags.data.counts import write_counts

    path = root / "counts.csv"
    if not path.exists():
        write_counts(root / "train.json", path)
    return path


def train_command(
    root: Path,
    out: Path,
    work: Path,
    settings: dict | None = None,
    method: dict | None = None,
    start: Path | None = None,
    groups: Path | None = None,
    arch: dict | None = None,
) -> list[str]:
    """``bags train`` arguments as the rules pass them, on a tiny dataset in ``root``."""
    args = [
        "train", "--annotations", root / "train.json", "--images", root / "images",
        "--counts", counts_file(root), "--on-bad", "stop", "--image-paths", "file_name",
        "--train-filter", "checked",
        "--arch", json.dumps(arch or TINY_ARCH), "--settings", json.dumps(settings or TINY_TRAIN),
        "--method", json.dumps(method or {}), "--out", out,
        "--epoch-log", Path(out).with_suffix(".csv"), "--work-dir", work, "--threads", 1,
        *(["--start", start] if start else []), *(["--groups-file", groups] if groups else []),
    ]  # fmt: skip
    return [str(a) for a in args]


RUN_BAGS = Path(__file__).with_name("run_bags.py")


def probed(
    bags_args: list[str],
    record: Path | None = None,
    watch: Path | None = None,
    signal_after: int | None = None,
    signal: str = "TERM",
) -> list[str]:
    """Arguments for ``tests/run_bags.py``: ``python -m bags <bags_args>`` that records its
    optimizer steps and written files into ``record``, and signals itself after a chosen step."""
    options: list[str] = []
    if record is not None:
        options += ["--record", str(record)]
    if watch is not None:
        options += ["--watch", str(watch)]
    if signal_after is not None:
        options += ["--signal-after", str(signal_after), "--signal", signal]
    return [str(RUN_BAGS), *options, "--", *bags_args]


def read_records(record: Path) -> dict[int, dict]:
    """What each process of a ``run_bags.py`` run recorded, by rank."""
    return {
        int(path.stem.removeprefix("rank")): json.loads(path.read_text())
        for path in sorted(record.glob("rank*.json"))
    }


RESUMED = re.compile(r"resum\w*\b.*?\bstep (\d+)", re.IGNORECASE)


def resumed_from(log: str) -> list[int]:
    """The steps a training log says it resumed from (none if it started fresh)."""
    return [int(step) for step in RESUMED.findall(log)]


@contextmanager
def counting_steps() -> Iterator[list[int]]:
    """Count the optimizer steps taken in this process inside the block (``counter[0]``)."""
    counter = [0]

    def hook(optimizer, args, kwargs) -> None:
        counter[0] += 1

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield counter
    finally:
        handle.remove()


ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def snakemake(workdir, *args, check=True, timeout=300, env=None):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    result = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "2", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def copy_workflow(dest):
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("workflow", "configs", "envs", "profiles"):
        shutil.copytree(ROOT / name, dest / name)
    return dest


JOB = re.compile(r"^(?:local)?rule (\S+):$")
WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")


def planned_jobs(dry_run_output: str) -> list[str]:
    """The jobs a ``snakemake --dry-run`` plans, as ``rule(wildcards)``, sorted."""
    jobs: list[list[str]] = []
    for line in dry_run_output.splitlines():
        if match := JOB.match(line):
            jobs.append([match.group(1), ""])
        elif (match := WILDCARDS.match(line)) and jobs:
            jobs[-1][1] = match.group(1)
    return sorted(f"{rule}({wildcards})" for rule, wildcards in jobs)


def load_script(path: Path):
    """A script of the repository (``scripts/``, ``benchmarks/``) as a module, to test its parts."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def methods_table(workdir: Path, *configs: str) -> dict[str, dict]:
    """The methods table the Snakefile makes of ``configs/methods.yaml`` and ``configs`` layered
    over it, in the table's order; a method set to null is dropped."""
    import yaml
    from snakemake.utils import update_config

    merged = yaml.safe_load((workdir / "configs" / "methods.yaml").read_text())["methods"]
    for config in configs:
        update_config(merged, yaml.safe_load((workdir / config).read_text()).get("methods", {}))
    return {name: entry for name, entry in merged.items() if entry is not None}
