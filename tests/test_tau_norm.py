"""tau-norm's held-out row keeps the tau with the best AP on held-out training images, and never
uses val.

The held-out images are a share of the training images (never val images). The AP of every tau
in the log is that tau's AP on them, re-measured here by running the saved detector on the
held-out images and evaluating its detections; the kept tau is the one with the best of these
APs, whatever the order the taus are tried in; and the choice is the same with val gone.
"""

import json
import shutil

import pandas as pd
import pytest
import torch

from bags.cli import main
from tests.helpers import counts_file, make_tiny_dataset, train_command

TAUS = [0, 0.5, 1, 2, 4]
HELDOUT = 0.3
DATA = ["--on-bad", "stop", "--image-paths", "file_name"]


def run(*args) -> None:
    assert main([str(a) for a in args]) == 0, args


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """A baseline trained on the tiny set, its counts and its held-out images."""
    d = tmp_path_factory.mktemp("tau")
    root = make_tiny_dataset(d / "data")
    settings = {"epochs": 6, "batch_size": 4, "lr": 0.02, "warmup_iters": 2}
    run(*train_command(root, d / "baseline.pt", d / "ck", settings))
    run("heldout", "--annotations", root / "train.json", "--share", HELDOUT, "--seed", 0,
        "--on-bad", "stop", "--out", d / "heldout.json")  # fmt: skip
    return root, d


def tau_norm(root, d, out, taus):
    """``bags posthoc`` choosing among ``taus``; returns the kept tau, the log and the model."""
    out.mkdir()
    method = {"posthoc": "tau_norm", "posthoc_options": {"taus": taus}}
    run("posthoc", "--baseline", d / "baseline.pt", "--method", json.dumps(method),
        "--counts", counts_file(root), "--annotations", root / "train.json",
        "--images", root / "images", "--heldout", d / "heldout.json", "--edges", 10, 100, 1000,
        *DATA, "--threads", 1, "--out", out / "model.pt", "--out-log", out / "log.csv")  # fmt: skip
    saved = torch.load(out / "model.pt", weights_only=True)
    log = pd.read_csv(out / "log.csv")
    return saved["meta"]["posthoc_choice"]["tau"], log, saved


def ids(path):
    return {image["id"] for image in json.loads(path.read_text())["images"]}


def test_heldout_images_are_training_images_not_val(baseline):
    root, d = baseline
    heldout, train, val = (ids(p) for p in (d / "heldout.json",
                                             root / "train.json", root / "val.json"))  # fmt: skip
    assert heldout <= train and not heldout & val
    assert len(heldout) == round(HELDOUT * len(train))
    # With the training images' own boxes.
    boxes = {a["id"] for a in json.loads((root / "train.json").read_text())["annotations"]
             if a["image_id"] in heldout}  # fmt: skip
    kept = json.loads((d / "heldout.json").read_text())["annotations"]
    assert {a["id"] for a in kept} == boxes


def test_keeps_the_tau_with_the_best_heldout_ap(baseline, tmp_path):
    root, d = baseline
    tau, log, saved = tau_norm(root, d, tmp_path / "a", TAUS)
    assert log["tau"].tolist() == TAUS
    assert log["chosen"].tolist() == [t == tau for t in TAUS]
    aps = dict(zip(log["tau"], log["heldout_AP"]))
    assert len(set(aps.values())) > 1  # the taus differ, so the choice matters
    assert aps[tau] == max(aps.values())
    # The same choice whatever the order the taus are tried in (the best is not simply the
    # first or the last one tried).
    again, log_again, _ = tau_norm(root, d, tmp_path / "b", TAUS[::-1])
    assert again == tau
    assert dict(zip(log_again["tau"], log_again["heldout_AP"])) == pytest.approx(aps)
    # The saved layer is the baseline's, each class row divided by its norm^tau; the
    # background row and the bias kept, as the reference's tau-norm does.
    original = torch.load(d / "baseline.pt", weights_only=True)["state_dict"]
    key = "roi_heads.box_predictor.cls_score."
    weight = original[key + "weight"].double()
    expected = weight.clone()
    expected[1:] = weight[1:] / weight[1:].norm(dim=1, keepdim=True) ** tau
    assert torch.allclose(saved["state_dict"][key + "weight"].double(), expected, atol=1e-6)
    assert torch.equal(saved["state_dict"][key + "bias"], original[key + "bias"])
    # The logged AP of the kept tau is the saved detector's AP on the held-out images,
    # measured here by running it on those images.
    out = tmp_path / "a"
    run("infer", "--model-file", out / "model.pt", "--annotations", d / "heldout.json",
        "--images", root / "images", *DATA, "--score-thresh", 0, "--detections-per-img", 300,
        "--batch-size", 16, "--workers", 0, "--device", "cpu", "--threads", 1,
        "--out", out / "heldout_detections.json")  # fmt: skip
    run("evaluate", "--annotations", d / "heldout.json",
        "--detections", out / "heldout_detections.json", "--counts", counts_file(root),
        "--edges", 10, 100, 1000, "--detections-per-img", 300, "--backend", "faster",
        "--out", out / "heldout_metrics.json")  # fmt: skip
    measured = json.loads((out / "heldout_metrics.json").read_text())["AP"]
    assert aps[tau] == pytest.approx(measured, abs=0.05)


def test_val_does_not_change_the_choice(baseline, tmp_path):
    """The same choice and log with the val annotations and images gone."""
    root, d = baseline
    tau, log, _ = tau_norm(root, d, tmp_path / "real", TAUS)
    no_val = tmp_path / "data"
    shutil.copytree(root, no_val, ignore=shutil.ignore_patterns("val*"))
    assert not (no_val / "val.json").exists() and not (no_val / "images" / "val").exists()
    other_tau, other_log, _ = tau_norm(no_val, d, tmp_path / "no_val", TAUS)
    assert other_tau == tau
    pd.testing.assert_frame_equal(other_log, log)
