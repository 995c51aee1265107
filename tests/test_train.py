import logging
from pathlib import Path

import pytest
import torch

from bags.cli import main
from bags.engine.train import TrainConfig, lr_factor
from tests.helpers import (
    TINY_TRAIN,
    counting_steps,
    make_tiny_dataset,
    resumed_from,
    train_command,
)


def test_lr_schedules():
    config = TrainConfig(epochs=12, schedule="step", milestones=(8, 11), warmup_iters=500)
    assert lr_factor(0, 1200, 0, config) == pytest.approx(1 / 3)
    assert lr_factor(250, 1200, 2, config) == pytest.approx(2 / 3)
    assert lr_factor(799, 1200, 7, config) == 1.0
    assert lr_factor(800, 1200, 8, config) == pytest.approx(0.1)
    assert lr_factor(1100, 1200, 11, config) == pytest.approx(0.01)
    cosine = TrainConfig(epochs=2, warmup_iters=0)
    assert lr_factor(0, 100, 0, cosine) == 1.0
    assert lr_factor(50, 100, 1, cosine) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(epochs=1, schedule="linear")


def train(root, out, work, train=TINY_TRAIN):
    return main(train_command(root, out, work, train))


def test_rerun_resumes_from_last_checkpoint_with_identical_result(tmp_path, caplog):
    root = make_tiny_dataset(tmp_path / "data")
    with counting_steps() as steps:
        assert train(root, tmp_path / "a.pt", tmp_path / "ck_a") == 0
    total = steps[0]
    assert train(root, tmp_path / "b.pt", tmp_path / "ck_b") == 0
    # As if killed during epoch 2: only the epoch-1 checkpoint is left.
    max(Path(tmp_path / "ck_b").glob("step_*.pt")).unlink()
    (tmp_path / "b.pt").unlink()
    per_epoch = total // TINY_TRAIN["epochs"]
    caplog.clear()
    with caplog.at_level(logging.INFO), counting_steps() as steps:
        assert train(root, tmp_path / "b.pt", tmp_path / "ck_b") == 0
    # It went on from the epoch-1 checkpoint and took only the steps of epoch 2 ...
    assert steps[0] == total - per_epoch
    assert resumed_from(caplog.text) == [per_epoch]
    # ... and ended where an uninterrupted run ends.
    a = torch.load(tmp_path / "a.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "b.csv").read_text().count("\n") == 3  # header + 2 epochs


def test_checkpoint_of_another_config_is_refused(tmp_path, capsys):
    root = make_tiny_dataset(tmp_path / "data")
    assert train(root, tmp_path / "a.pt", tmp_path / "ck") == 0
    max(Path(tmp_path / "ck").glob("step_*.pt")).unlink()
    changed = {**TINY_TRAIN, "lr": 0.5}
    assert train(root, tmp_path / "b.pt", tmp_path / "ck", changed) == 1
    assert "made with another configuration" in capsys.readouterr().err
    assert not (tmp_path / "b.pt").exists()


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_path_trains(tmp_path, amp):
    root = make_tiny_dataset(tmp_path / "data")
    settings = {**TINY_TRAIN, "epochs": 1, "amp": amp}
    assert train(root, tmp_path / "m.pt", tmp_path / "ck", settings) == 0
    state = torch.load(tmp_path / "m.pt", weights_only=True)["state_dict"]
    assert all(v.dtype != torch.bfloat16 for v in state.values())  # weights stay fp32


def test_linear_lr_scaling():
    assert TrainConfig(epochs=1, lr=0.02, batch_size=4, base_batch_size=16).scaled_lr() == 0.005
    assert TrainConfig(epochs=1, lr=0.02, batch_size=4).scaled_lr() == 0.02
    with pytest.raises(ValueError, match="amp"):
        TrainConfig(epochs=1, amp="fp8")
