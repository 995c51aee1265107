"""Every CLI command on a tiny synthetic dataset, as the rules call them."""

import json
import logging
import shutil

import pandas as pd
import pytest
import torch

from bags.cli import main
from bags.engine.model_files import load_model
from tests.helpers import TINY_ARCH, TINY_SPEC, TINY_TRAIN, counting_steps, resumed_from


def run(*args):
    return main([str(a) for a in args])


DATA = ["--on-bad", "stop", "--image-paths", "file_name"]
SCORING = ["--score-thresh", "0", "--detections-per-img", "300"]
BAGS = {"loss": "bags", "last_layer": "fresh"}


def train_args(d, data, name, settings, method=None, start=None, groups=None):
    return [
        "train", "--annotations", data / "train.json", "--images", data / "images",
        "--counts", d / "counts.csv", *DATA, "--train-filter", "checked",
        "--arch", json.dumps(TINY_ARCH),
        "--settings", json.dumps(settings), "--method", json.dumps(method or {}),
        *(["--start", start] if start else []), *(["--groups-file", groups] if groups else []),
        "--out", d / f"{name}.pt", "--epoch-log", d / f"{name}.csv",
        "--work-dir", d / f"ck_{name}", "--threads", 1,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """synthesize -> count -> groups -> train baseline -> train BAGS -> infer -> evaluate."""
    d = tmp_path_factory.mktemp("cli")
    data = d / "data"
    assert run("synthesize", "--spec", json.dumps(TINY_SPEC), "--out", data) == 0
    counts = ["--annotations", data / "train.json", "--out", d / "counts.csv"]
    assert run("count", *counts, "--on-bad", "stop") == 0
    groups = ["--counts-file", d / "counts.csv", "--edges", 10, 100, 1000, "--beta", "4"]
    assert run("groups", *groups, "--out", d / "groups.json") == 0
    assert run(*train_args(d, data, "baseline", TINY_TRAIN)) == 0
    bags_train = {**TINY_TRAIN, "trainable": "classifier"}
    bags = train_args(d, data, "bags", bags_train, BAGS, d / "baseline.pt", d / "groups.json")
    assert run(*bags) == 0
    for name in ("baseline", "bags"):
        infer = ["--model-file", d / f"{name}.pt", "--annotations", data / "val.json"]
        infer += ["--images", data / "images", *DATA, *SCORING, "--batch-size", 4]
        infer += ["--workers", 0, "--threads", 1, "--out", d / f"{name}_det.json"]
        assert run("infer", *infer) == 0
        evaluate = ["--annotations", data / "val.json", "--detections", d / f"{name}_det.json"]
        evaluate += ["--counts", d / "counts.csv", "--edges", 10, 100, 1000]
        evaluate += ["--detections-per-img", 300, "--backend", "faster"]
        evaluate += ["--out", d / f"{name}_metrics.json"]
        assert run("evaluate", *evaluate) == 0
        norms = ["--model-file", d / f"{name}.pt", "--counts", d / "counts.csv"]
        assert run("norms", *norms, "--out", d / f"{name}_norms.csv") == 0
    return d


def test_counts_and_groups(pipeline):
    counts = pd.read_csv(pipeline / "counts.csv")
    assert sorted(counts["instance_count"]) == [2, 3, 10, 12, 30]
    assert counts["category_id"].tolist() == [1, 2, 3, 4, 5]
    groups = json.loads((pipeline / "groups.json").read_text())
    assert groups["beta"] == 4.0
    assert [len(g["classes"]) for g in groups["groups"]] == [2, 3]
    assert groups["num_logits"] == 5 + 1 + 3


def test_training_outputs(pipeline):
    log = pd.read_csv(pipeline / "baseline.csv")
    assert log["epoch"].tolist() == [1, 2]
    assert {"loss", "loss_classifier", "lr", "seconds", "images_per_s"} <= set(log.columns)
    steps = sorted(p.name for p in (pipeline / "ck_baseline").iterdir())
    per_epoch = -(-len(json.loads((pipeline / "data" / "train.json").read_text())["images"]) // 8)
    assert steps == [f"step_{per_epoch:09d}.pt", f"step_{2 * per_epoch:09d}.pt"]
    baseline, meta = load_model(pipeline / "baseline.pt")
    bags, bags_meta = load_model(pipeline / "bags.pt")
    assert meta["classifier"] == "softmax" and bags_meta["classifier"] == "bags"
    # BAGS trained only the last layer: every other weight equals the baseline's.
    b, g = baseline.state_dict(), bags.state_dict()
    for key in b:
        if "cls_score" not in key:
            assert torch.equal(b[key], g[key]), key
    assert g["roi_heads.box_predictor.cls_score.weight"].shape[0] == 9


def test_detections_metrics_and_norms(pipeline):
    detections = json.loads((pipeline / "bags_det.json").read_text())
    per_image = pd.Series([d["image_id"] for d in detections]).value_counts()
    assert per_image.max() <= 300
    metrics = json.loads((pipeline / "bags_metrics.json").read_text())
    assert {"AP", "APr", "APc", "APf", "AP1", "AP2", "AP3", "AP4"} <= set(metrics)
    norms = pd.read_csv(pipeline / "bags_norms.csv")
    assert list(norms.columns) == ["category_id", "name", "instance_count", "norm"]
    assert len(norms) == 5 and (norms["norm"] > 0).all()


def test_table_figures_and_claims(pipeline):
    d = pipeline
    metrics = [f"baseline={d / 'baseline_metrics.json'}", f"BAGS={d / 'bags_metrics.json'}"]
    table = ["--metrics", *metrics, "--caption", "", "--out-stem", d / "tables" / "comparison"]
    assert run("table", *table) == 0
    table = pd.read_csv(d / "tables" / "comparison.csv")
    assert table["method"].tolist() == ["baseline", "BAGS"]
    assert (d / "tables" / "comparison.tex").read_text().count("\\midrule") == 1
    norms = [f"balanced={d / 'baseline_norms.csv'}", f"long-tailed={d / 'baseline_norms.csv'}"]
    figure = ["--kind", "weight_norms", "--inputs", *norms, "--out-stem", d / "fig" / "wn"]
    assert run("figure", *figure) == 0
    pair = [f"baseline={d / 'baseline_norms.csv'}", f"BAGS={d / 'bags_norms.csv'}"]
    figure = ["--kind", "weight_norms_bags", "--inputs", *pair, "--out-stem", d / "fig" / "wnb"]
    assert run("figure", *figure) == 0
    for name in ("wn", "wnb"):
        assert (d / "fig" / f"{name}.pdf").stat().st_size > 0
        assert (d / "fig" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert (
        run(
            "claims",
            "--baseline-norms",
            d / "baseline_norms.csv",
            "--balanced-norms",
            d / "baseline_norms.csv",
            "--bags-norms",
            d / "bags_norms.csv",
            "--baseline-metrics",
            d / "baseline_metrics.json",
            "--bags-metrics",
            d / "bags_metrics.json",
            "--rows",
            *metrics,
            "--bags-label",
            "BAGS",
            "--title",
            "Claims",
            "--out",
            d / "claims.md",
        )
        == 0
    )
    assert "claims pass" in (d / "claims.md").read_text()


def test_errors_are_one_line_naming_the_file(pipeline, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [], "categories": [], "annotations": {}}))
    assert run("count", "--annotations", bad, "--out", tmp_path / "c.csv", "--on-bad", "stop") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"bags count: error: {bad}: missing or non-list field 'annotations'"
    assert not (tmp_path / "c.csv").exists()

    images = tmp_path / "images"
    (images / "val").mkdir(parents=True)
    assert (
        run(
            "infer",
            "--model-file",
            pipeline / "bags.pt",
            "--annotations",
            pipeline / "data" / "val.json",
            "--images",
            images,
            *DATA,
            *SCORING,
            "--batch-size",
            4,
            "--workers",
            0,
            "--threads",
            1,
            "--out",
            tmp_path / "det.json",
        )
        == 1
    )
    assert "missing image" in capsys.readouterr().err
    assert not (tmp_path / "det.json").exists()

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    assert (
        run(
            "norms",
            "--model-file",
            broken,
            "--counts",
            pipeline / "counts.csv",
            "--out",
            tmp_path / "n.csv",
        )
        == 1
    )
    assert "not a readable model file" in capsys.readouterr().err


def test_a_fine_tune_never_resumes_from_another_baseline(pipeline, tmp_path, capsys, caplog):
    # The same settings and checkpoints, but a baseline whose weights differ.
    content = torch.load(pipeline / "baseline.pt", weights_only=True)
    next(iter(content["state_dict"].values())).add_(1.0)
    torch.save(content, tmp_path / "retrained.pt")
    data = pipeline / "data"
    bags_train = {**TINY_TRAIN, "trainable": "classifier"}
    args = train_args(
        pipeline,
        data,
        "bags",
        bags_train,
        BAGS,
        tmp_path / "retrained.pt",
        pipeline / "groups.json",
    )
    args[args.index("--out") + 1] = tmp_path / "bags.pt"
    args[args.index("--epoch-log") + 1] = tmp_path / "bags.csv"
    args[args.index("--work-dir") + 1] = work = tmp_path / "ck"
    # The checkpoints of the finished run on the old baseline: it trains again, from the start.
    shutil.copytree(pipeline / "ck_bags", work)
    with caplog.at_level(logging.INFO), counting_steps() as steps:
        assert run(*args) == 0
    assert "differs in meta" in caplog.text and "starting over" in caplog.text
    assert resumed_from(caplog.text) == [] and steps[0] > 0
    # Those of a run on the old baseline that was stopped before its end: refused.
    shutil.rmtree(work)
    shutil.copytree(pipeline / "ck_bags", work)
    max(work.glob("step_*.pt")).unlink()
    (tmp_path / "bags.pt").unlink()
    assert run(*args) == 1
    assert "differs in meta" in capsys.readouterr().err
    assert not (tmp_path / "bags.pt").exists()
