"""tau-norm keeps the tau with the best AP on held-out training images, and never uses val.

The held-out images are a share of the training images (never val images). The AP of every tau
in the log is that tau's AP on them, re-measured here by running the saved detector on the
held-out images and evaluating its detections; the kept tau is the one with the best of these
APs, whatever the order the taus are tried in; and replacing val's cached features by noise
changes neither the APs nor the choice.
"""

import json
import math

import pandas as pd
import pytest
import torch

from bags.cli import main
from bags.engine.feature_cache import load_features, save_features
from tests.helpers import TINY_ARCH, make_tiny_dataset

TAUS = [0, 0.5, 1, 2, 4]
HELDOUT = 0.3


def run(*args) -> None:
    assert main([str(a) for a in args]) == 0, args


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """A baseline trained on the tiny set, its counts and its feature cache."""
    d = tmp_path_factory.mktemp("tau")
    root = make_tiny_dataset(d / "data")
    settings = {"epochs": 6, "batch_size": 4, "lr": 0.02, "warmup_iters": 2}
    images = ["--images", root / "images"]
    run("train", "--annotations", root / "train.json", *images, "--arch", json.dumps(TINY_ARCH),
        "--train", json.dumps(settings), "--out", d / "baseline.pt",
        "--epoch-log", d / "baseline.csv", "--work-dir", d / "ck")  # fmt: skip
    run("count", "--annotations", root / "train.json", "--out", d / "counts.csv")
    run("cache", "--model", d / "baseline.pt", "--annotations", root / "train.json",
        "--val", root / "val.json", *images, "--heldout", HELDOUT,
        "--out-dir", d / "cache")  # fmt: skip
    return root, d


def tau_norm(d, cache_dir, out, taus):
    """``bags head`` for tau-norm; returns the kept tau, the log and the saved model."""
    out.mkdir()
    run("head", "--baseline", d / "baseline.pt", "--cache-dir", cache_dir,
        "--counts", d / "counts.csv", "--posthoc", json.dumps({"kind": "tau_norm", "taus": taus}),
        "--out-model", out / "model.pt", "--out-log", out / "log.csv",
        "--out-detections", out / "detections.json", "--out-norms", out / "norms.csv")  # fmt: skip
    saved = torch.load(out / "model.pt", weights_only=True)
    log = pd.read_csv(out / "log.csv")
    return saved["meta"]["posthoc"]["tau"], log, saved


def ids(path):
    return {image["id"] for image in json.loads(path.read_text())["images"]}


def test_heldout_images_are_training_images_not_val(cached):
    root, d = cached
    heldout, train, val = (ids(p) for p in (d / "cache" / "heldout.json",
                                             root / "train.json", root / "val.json"))  # fmt: skip
    assert heldout <= train and not heldout & val
    assert len(heldout) == round(HELDOUT * len(train))
    assert set(load_features(d / "cache" / "heldout.pt").image_ids) == heldout
    # With the training images' own boxes.
    boxes = {a["id"] for a in json.loads((root / "train.json").read_text())["annotations"]
             if a["image_id"] in heldout}  # fmt: skip
    kept = json.loads((d / "cache" / "heldout.json").read_text())["annotations"]
    assert {a["id"] for a in kept} == boxes


def test_keeps_the_tau_with_the_best_heldout_ap(cached, tmp_path):
    root, d = cached
    tau, log, saved = tau_norm(d, d / "cache", tmp_path / "a", TAUS)
    assert log["tau"].tolist() == TAUS
    aps = dict(zip(log["tau"], log["heldout_AP"]))
    assert len(set(aps.values())) > 1  # the taus differ, so the choice matters
    assert aps[tau] == max(aps.values())
    # The same choice whatever the order the taus are tried in (the best is not simply the
    # first or the last one tried).
    again, log_again, _ = tau_norm(d, d / "cache", tmp_path / "b", TAUS[::-1])
    assert again == tau
    assert dict(zip(log_again["tau"], log_again["heldout_AP"])) == pytest.approx(aps)
    # The saved layer is the baseline's, each row divided by its norm^tau, without bias.
    baseline = torch.load(d / "baseline.pt", weights_only=True)["state_dict"]
    key = "roi_heads.box_predictor.cls_score."
    weight = baseline[key + "weight"].double()
    expected = weight / weight.norm(dim=1, keepdim=True) ** tau
    assert torch.allclose(saved["state_dict"][key + "weight"].double(), expected, atol=1e-6)
    assert not saved["state_dict"][key + "bias"].any()
    # The logged AP of the kept tau is the saved detector's AP on the held-out images,
    # measured here by running it on those images.
    out = tmp_path / "a"
    run("infer", "--model", out / "model.pt", "--annotations", d / "cache" / "heldout.json",
        "--images", root / "images", "--device", "cpu",
        "--out", out / "heldout_detections.json")  # fmt: skip
    run("evaluate", "--annotations", d / "cache" / "heldout.json",
        "--detections", out / "heldout_detections.json", "--counts", d / "counts.csv",
        "--out", out / "heldout_metrics.json")  # fmt: skip
    measured = json.loads((out / "heldout_metrics.json").read_text())["AP"]
    assert aps[tau] == pytest.approx(measured, abs=0.05)


def test_val_does_not_change_the_choice(cached, tmp_path):
    _, d = cached
    tau, log, _ = tau_norm(d, d / "cache", tmp_path / "real", TAUS)
    noisy = tmp_path / "cache"
    noisy.mkdir()
    for name in ("train.pt", "heldout.pt", "heldout.json"):
        (noisy / name).symlink_to(d / "cache" / name)
    val = load_features(d / "cache" / "val.pt")
    generator = torch.Generator().manual_seed(0)
    val.features = [torch.randn(f.shape, generator=generator) * 10 for f in val.features]
    save_features(val, noisy / "val.pt")
    other_tau, other_log, _ = tau_norm(d, noisy, tmp_path / "noisy", TAUS)
    assert other_tau == tau
    pd.testing.assert_frame_equal(other_log, log)
    # ... while what is scored on val did change.
    detections = [json.loads((tmp_path / n / "detections.json").read_text())
                  for n in ("real", "noisy")]  # fmt: skip
    assert detections[0] != detections[1]
    assert not math.isnan(log["heldout_AP"].max())
