"""Two processes (gloo, CPU) train like one process at the same global batch."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from tests.helpers import TINY_ARCH, make_tiny_dataset

SETTINGS = {"epochs": 3, "batch_size": 4, "lr": 0.01, "warmup_iters": 2}
TOLERANCE = 0.08  # relative, on each epoch's mean loss: each process draws its own RoI
# samples and computes batch-norm statistics on its half of the batch (measured: within 3.5%)


def run(root: Path, d: Path, processes: int) -> Path:
    out = d / f"p{processes}.pt"
    args = [
        "-m", "bags", "train", "--annotations", str(root / "train.json"),
        "--images", str(root / "images"), "--arch", json.dumps(TINY_ARCH),
        "--train", json.dumps(SETTINGS), "--out", str(out),
        "--epoch-log", str(out.with_suffix(".csv")), "--work-dir", str(d / f"ck{processes}"),
        "--threads", "1", "--device", "cpu",
    ]  # fmt: skip
    if processes == 1:
        launcher = [sys.executable]
    else:
        torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
        launcher = [torchrun, "--standalone", f"--nproc_per_node={processes}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(launcher + args, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_two_processes_match_one_at_the_same_global_batch(tmp_path):
    root = make_tiny_dataset(tmp_path / "data")
    one, two = run(root, tmp_path, 1), run(root, tmp_path, 2)
    steps = [sorted(p.name for p in (tmp_path / f"ck{n}").glob("step_*.pt")) for n in (1, 2)]
    assert steps[0] == steps[1]  # the same optimizer steps, checkpoints only from rank 0
    logs = [list(csv.DictReader(p.with_suffix(".csv").open())) for p in (one, two)]
    assert len(logs[0]) == len(logs[1]) == SETTINGS["epochs"]
    for a, b in zip(*logs):
        assert abs(float(a["loss"]) - float(b["loss"])) <= TOLERANCE * float(a["loss"]), (a, b)
    # one model file, written by rank 0, loadable
    assert torch.load(two, weights_only=True)["meta"]["num_classes"] == 5
