"""Killed or preempted training resumes from its last checkpoint to exactly the weights of an
uninterrupted run.

Training on the CPU is deterministic, so equal weights alone would also come from a rerun that
ignores the checkpoint and starts over. Each rerun here must also say which step it resumed
from and take only the steps that were left. The signal comes right after an optimizer step
that the test chooses (``tests/run_bags.py``), never after a delay.
"""

import csv
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bags.engine.checkpoints import save_checkpoint
from tests.helpers import make_tiny_dataset, probed, read_records, resumed_from, train_command

SETTINGS = {"epochs": 4, "batch_size": 2, "lr": 0.01, "warmup_iters": 2}
TIMING = ("seconds", "images_per_s")  # the only log columns a resumed run may change


def bags_args(root: Path, out: Path, work: Path, settings=SETTINGS) -> list[str]:
    return train_command(root, out, work, settings)


def train(root, out, work, record, signal_after=None, sig="TERM"):
    """One training process; returns its exit code and stderr."""
    args = probed(bags_args(root, out, work), record, None, signal_after, sig)
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)
    return result.returncode, result.stderr


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def steps_of(work: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in work.glob("step_*.pt"))


def epoch_log(path: Path) -> list[dict[str, str]]:
    rows = list(csv.DictReader(path.open()))
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    root = make_tiny_dataset(d / "data")
    code, stderr = train(root, d / "full.pt", d / "ck_full", d / "rec")
    assert code == 0, stderr
    assert resumed_from(stderr) == []
    total = read_records(d / "rec")[0]["steps"]
    assert steps_of(d / "ck_full")[-1] == total
    per_epoch = total // SETTINGS["epochs"]
    assert per_epoch * SETTINGS["epochs"] == total and per_epoch >= 6
    return root, weights(d / "full.pt"), epoch_log(d / "full.csv"), per_epoch, total


def assert_same_as_uninterrupted(uninterrupted, out: Path) -> None:
    _, expected, expected_log, _, _ = uninterrupted
    resumed = weights(out)
    assert resumed.keys() == expected.keys()
    for key in expected:
        same = torch.equal(expected[key], resumed[key])
        assert same, f"{key} differs from the uninterrupted run's"
    assert epoch_log(out.with_suffix(".csv")) == expected_log


def test_sigkill_mid_epoch_then_rerun_resumes_from_the_last_epoch_end(uninterrupted, tmp_path):
    root, _, _, per_epoch, total = uninterrupted
    out, work = tmp_path / "m.pt", tmp_path / "ck"
    killed_after = per_epoch + 3  # in the second epoch
    code, _ = train(root, out, work, tmp_path / "rec1", killed_after, "KILL")
    assert code == -signal.SIGKILL
    assert not out.exists()
    assert steps_of(work)[-1] == per_epoch  # the end of the first epoch: the last checkpoint

    code, stderr = train(root, out, work, tmp_path / "rec2")
    assert code == 0, stderr
    assert resumed_from(stderr) == [per_epoch]
    assert read_records(tmp_path / "rec2")[0]["steps"] == total - per_epoch
    assert_same_as_uninterrupted(uninterrupted, out)


def test_sigterm_mid_epoch_saves_that_step_and_reruns_resume_from_it(uninterrupted, tmp_path):
    root, _, _, per_epoch, total = uninterrupted
    out, work = tmp_path / "m.pt", tmp_path / "ck"
    first = per_epoch + 3  # in the second epoch
    second = 2 * per_epoch + 4  # in the third, after resuming from the first stop
    assert first % per_epoch and second % per_epoch  # neither is an epoch boundary

    code, stderr = train(root, out, work, tmp_path / "rec1", first)
    assert code == 143, stderr
    assert read_records(tmp_path / "rec1")[0]["steps"] == first  # stopped after that step
    assert steps_of(work)[-1] == first  # saved mid-epoch, at the step it stopped
    assert not out.exists()

    code, stderr = train(root, out, work, tmp_path / "rec2", second - first)
    assert code == 143, stderr
    assert resumed_from(stderr) == [first]
    assert read_records(tmp_path / "rec2")[0]["steps"] == second - first
    assert steps_of(work)[-1] == second

    code, stderr = train(root, out, work, tmp_path / "rec3")
    assert code == 0, stderr
    assert resumed_from(stderr) == [second]
    assert read_records(tmp_path / "rec3")[0]["steps"] == total - second
    assert_same_as_uninterrupted(uninterrupted, out)


def test_checkpoint_of_other_code_is_refused(uninterrupted, tmp_path):
    root, _, _, per_epoch, _ = uninterrupted
    out, work = tmp_path / "m.pt", tmp_path / "ck"
    code, stderr = train(root, out, work, tmp_path / "rec1", per_epoch + 3)
    assert code == 143, stderr
    last = work / f"step_{per_epoch + 3:09d}.pt"
    state = torch.load(last, weights_only=False)
    state["code_version"] = "0.0.0+older"
    torch.save(state, last)
    code, stderr = train(root, out, work, tmp_path / "rec2")
    assert code == 1
    assert "made with code version 0.0.0+older" in stderr.splitlines()[-1]
    assert read_records(tmp_path / "rec2")[0]["steps"] == 0
    assert not out.exists()


def test_a_killed_save_leaves_nothing_behind_the_next_save(tmp_path):
    """SIGKILL during a save leaves its temporary; the next checkpoint of any step removes it."""
    stale = tmp_path / ".step_000000003.pt.0123456789abcdef.tmp"
    stale.write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path, 4, {"step": 4}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000000004.pt"]
