"""Killed or preempted training resumes to exactly the weights of an uninterrupted run."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import TINY_ARCH, make_tiny_dataset

SETTINGS = {"epochs": 4, "batch_size": 2, "lr": 0.01, "warmup_iters": 2}


def command(root: Path, out: Path, work: Path, settings=SETTINGS) -> list[str]:
    return [
        sys.executable, "-m", "bags", "train",
        "--annotations", str(root / "train.json"), "--images", str(root / "images"),
        "--arch", json.dumps(TINY_ARCH), "--train", json.dumps(settings),
        "--out", str(out), "--epoch-log", str(out.with_suffix(".csv")), "--work-dir", str(work),
        "--threads", "1",
    ]  # fmt: skip


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def steps_of(work: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in work.glob("step_*.pt"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    root = make_tiny_dataset(d / "data")
    subprocess.run(command(root, d / "full.pt", d / "ck_full"), check=True, capture_output=True)
    per_epoch = steps_of(d / "ck_full")[-1] // SETTINGS["epochs"]
    return root, weights(d / "full.pt"), per_epoch


def interrupt(root, tmp_path, sig, per_epoch):
    """Start training, send ``sig`` during its second epoch, return the exit code."""
    work = tmp_path / "ck"
    process = subprocess.Popen(
        command(root, tmp_path / "m.pt", work), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not (work / f"step_{per_epoch:09d}.pt").exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.3)  # into the second epoch
    process.send_signal(sig)
    process.wait(timeout=120)
    assert not (tmp_path / "m.pt").exists(), "finished before the signal: make the run longer"
    return process.returncode, work


def test_sigkill_mid_epoch_then_rerun_gives_identical_weights(uninterrupted, tmp_path):
    root, expected, per_epoch = uninterrupted
    code, work = interrupt(root, tmp_path, signal.SIGKILL, per_epoch)
    assert code == -signal.SIGKILL
    subprocess.run(command(root, tmp_path / "m.pt", work), check=True, capture_output=True)
    resumed = weights(tmp_path / "m.pt")
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)


def test_sigterm_saves_mid_epoch_and_rerun_gives_identical_weights(uninterrupted, tmp_path):
    root, expected, per_epoch = uninterrupted
    code, work = interrupt(root, tmp_path, signal.SIGTERM, per_epoch)
    assert code == 143
    saved = steps_of(work)[-1]
    assert per_epoch < saved < per_epoch * SETTINGS["epochs"]
    subprocess.run(command(root, tmp_path / "m.pt", work), check=True, capture_output=True)
    resumed = weights(tmp_path / "m.pt")
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    log = (tmp_path / "m.csv").read_text().splitlines()
    assert len(log) == 1 + SETTINGS["epochs"]


def test_checkpoint_of_other_code_is_refused(uninterrupted, tmp_path):
    root, _, per_epoch = uninterrupted
    _, work = interrupt(root, tmp_path, signal.SIGTERM, per_epoch)
    last = work / f"step_{steps_of(work)[-1]:09d}.pt"
    state = torch.load(last, weights_only=False)
    state["code_version"] = "0.0.0+older"
    torch.save(state, last)
    result = subprocess.run(command(root, tmp_path / "m.pt", work), capture_output=True, text=True)
    assert result.returncode == 1
    assert "made with code version 0.0.0+older" in result.stderr.splitlines()[-1]
    assert not (tmp_path / "m.pt").exists()
