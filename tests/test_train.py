import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bags.cli import main
from bags.data.synthetic import SyntheticSpec, generate
from bags.engine.device import resolve_amp
from bags.engine.settings import TrainConfig, lr_factor
from tests.helpers import (
    TINY_SPEC,
    TINY_TRAIN,
    counting_steps,
    make_tiny_dataset,
    resumed_from,
    train_command,
)


def test_lr_schedules():
    config = TrainConfig.from_dict(
        dict(epochs=12, schedule="step", milestones=(8, 11), warmup_iters=500)
    )
    assert lr_factor(0, 1200, 0, config) == pytest.approx(1 / 3)
    assert lr_factor(250, 1200, 2, config) == pytest.approx(2 / 3)
    assert lr_factor(799, 1200, 7, config) == 1.0
    assert lr_factor(800, 1200, 8, config) == pytest.approx(0.1)
    assert lr_factor(1100, 1200, 11, config) == pytest.approx(0.01)
    cosine = TrainConfig.from_dict(dict(epochs=2, warmup_iters=0, schedule="cosine"))
    assert lr_factor(0, 100, 0, cosine) == 1.0
    assert lr_factor(50, 100, 1, cosine) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig.from_dict(dict(epochs=1, schedule="linear"))


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


def test_a_finished_run_of_another_config_gives_way_to_a_fresh_one(tmp_path, caplog):
    """As when Snakemake reruns a finished job whose settings changed: nothing is left to
    resume, so the new run starts over and ends as a run in an empty folder does."""
    root = make_tiny_dataset(tmp_path / "data")
    assert train(root, tmp_path / "a.pt", tmp_path / "ck") == 0
    changed = {**TINY_TRAIN, "lr": 0.5}
    with counting_steps() as fresh_steps:
        assert train(root, tmp_path / "fresh.pt", tmp_path / "ck_fresh", changed) == 0
    caplog.clear()
    with caplog.at_level(logging.INFO), counting_steps() as steps:
        assert train(root, tmp_path / "b.pt", tmp_path / "ck", changed) == 0
    assert "by a run that had finished; starting over" in caplog.text
    assert resumed_from(caplog.text) == [] and steps[0] == fresh_steps[0]
    fresh = torch.load(tmp_path / "fresh.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(fresh[k], b[k]) for k in fresh)


def test_a_checkpoint_of_other_data_is_never_resumed(tmp_path, caplog):
    """The training data changed between two runs in one work dir (as when a config's data
    seed changes and Snakemake reruns the job), the settings did not: the run trains on the
    new data from the start, whether the old run had finished or was interrupted, and ends as
    a run in an empty folder does."""
    old = make_tiny_dataset(tmp_path / "old")
    new = tmp_path / "new"
    generate(SyntheticSpec(**{**TINY_SPEC, "seed": TINY_SPEC["seed"] + 1}), new)
    assert train(new, tmp_path / "fresh.pt", tmp_path / "ck_fresh") == 0
    fresh = torch.load(tmp_path / "fresh.pt", weights_only=True)["state_dict"]
    for interrupted in (False, True):
        work = tmp_path / f"ck_{interrupted}"
        assert train(old, tmp_path / "old.pt", work) == 0
        if interrupted:  # as if killed during epoch 2: only the epoch-1 checkpoint is left
            max(work.glob("step_*.pt")).unlink()
        caplog.clear()
        with caplog.at_level(logging.INFO):
            assert train(new, tmp_path / "new.pt", work) == 0
        assert "differs in data), trained on other data, discarded" in caplog.text
        assert resumed_from(caplog.text) == []
        b = torch.load(tmp_path / "new.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(fresh[k], b[k]) for k in fresh)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_path_trains(tmp_path, amp):
    root = make_tiny_dataset(tmp_path / "data")
    settings = {**TINY_TRAIN, "epochs": 1, "amp": amp}
    assert train(root, tmp_path / "m.pt", tmp_path / "ck", settings) == 0
    saved = torch.load(tmp_path / "m.pt", weights_only=True)
    assert all(v.dtype != torch.bfloat16 for v in saved["state_dict"].values())  # weights: fp32
    assert saved["meta"]["precision"] == amp


def _cpu_with(monkeypatch, amx: bool, onednn_bf16: bool) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn_bf16)


def test_auto_precision_is_bf16_only_where_the_cpu_runs_it_faster(monkeypatch):
    cpu = torch.device("cpu")
    for amp in ("none", "bf16", "fp16"):
        assert resolve_amp(amp, cpu) == amp
    _cpu_with(monkeypatch, amx=True, onednn_bf16=True)
    assert resolve_amp("auto", cpu) == "bf16"
    _cpu_with(monkeypatch, amx=False, onednn_bf16=True)  # AVX-512 bf16 kernels, slower than fp32
    assert resolve_amp("auto", cpu) == "none"
    _cpu_with(monkeypatch, amx=True, onednn_bf16=False)
    assert resolve_amp("auto", cpu) == "none"


def test_auto_precision_asks_onednn_for_its_bf16_kernels():
    """oneDNN capped at AVX2 (as on a CPU without AVX-512) has no bf16 kernels: auto is fp32."""
    code = "import torch; from bags.engine.device import resolve_amp; "
    code += "print(resolve_amp('auto', torch.device('cpu')))"
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "none", done.stderr


def test_a_run_resumes_only_at_the_precision_it_began_with(tmp_path, monkeypatch, capsys):
    root = make_tiny_dataset(tmp_path / "data")
    settings = {**TINY_TRAIN, "amp": "auto"}
    _cpu_with(monkeypatch, amx=True, onednn_bf16=True)
    assert train(root, tmp_path / "a.pt", tmp_path / "ck", settings) == 0
    assert torch.load(tmp_path / "a.pt", weights_only=True)["meta"]["precision"] == "bf16"
    max(Path(tmp_path / "ck").glob("step_*.pt")).unlink()
    (tmp_path / "a.pt").unlink()
    # The same config on a machine where auto means fp32: the bf16 checkpoint is not resumed.
    _cpu_with(monkeypatch, amx=False, onednn_bf16=True)
    assert train(root, tmp_path / "a.pt", tmp_path / "ck", settings) == 1
    assert "made with another configuration" in capsys.readouterr().err
    assert not (tmp_path / "a.pt").exists()


def test_linear_lr_scaling():
    assert (
        TrainConfig.from_dict(dict(epochs=1, lr=0.02, batch_size=4, base_batch_size=16)).scaled_lr()
        == 0.005
    )
    assert TrainConfig.from_dict(dict(epochs=1, lr=0.02, batch_size=4)).scaled_lr() == 0.02
    with pytest.raises(ValueError, match="amp"):
        TrainConfig.from_dict(dict(epochs=1, amp="fp8"))


def _gradient_norm_after_one_step(grad_clip):
    """The total gradient norm a training step leaves on a small detector (lr 0: no update)."""
    from bags.builders import build_detector
    from bags.engine.train import _step

    torch.manual_seed(0)
    model = build_detector({"name": "small", "image_size": 64}, num_classes=3).train()
    images = [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    box = torch.tensor([[8.0, 8.0, 40.0, 40.0]])
    targets = [{"boxes": box, "labels": torch.tensor([i + 1])} for i in range(2)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    config = TrainConfig.from_dict(dict(epochs=1, warmup_iters=0, grad_clip=grad_clip))
    _step(model, images, targets, optimizer, scheduler, scaler, config, "none", torch.device("cpu"))
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()


def test_gradient_clipping_bounds_the_total_norm():
    unclipped = _gradient_norm_after_one_step(None)
    assert unclipped > 0.1
    assert _gradient_norm_after_one_step(0.1) == pytest.approx(0.1, rel=1e-4)
    # A bound above the norm leaves the gradients as they are.
    assert _gradient_norm_after_one_step(2 * unclipped) == pytest.approx(unclipped, rel=1e-6)
    for bad in (0, -1.0, float("nan"), "35"):
        with pytest.raises(ValueError, match="grad_clip"):
            TrainConfig.from_dict(dict(epochs=1, grad_clip=bad))


def test_settings_not_given_are_the_schemas_defaults():
    """A library caller and the pipeline get the same training from the same knobs: what the
    caller leaves out is the config schema's default (its schedule is step, not cosine)."""
    from bags.schema import defaults

    config = TrainConfig.from_dict({"epochs": 3})
    stated = defaults("schedule", definition=True)
    assert {key: getattr(config, key) for key in stated} == stated
    assert config.schedule == "step" and config.box_loss_beta == pytest.approx(1 / 9)
