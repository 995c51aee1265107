"""What the finished tiny DAG shows about its structure: where each row started and what it
trained, the groups files feeding BAGS, the figure table driving the rules, and config values
that arrive as text, never as shell."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.helpers import ROOT, copy_workflow, planned_jobs, resumed_from, snakemake

RUNS = Path("results") / "test" / "runs"


def model(workdir: Path, dataset: str, method: str) -> dict:
    return torch.load(workdir / RUNS / dataset / method / "seed0" / "model.pt", weights_only=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def changed(a: dict, b: dict, prefix: str) -> bool:
    """Whether any weight under ``prefix`` differs between two state dicts."""
    keys = [k for k in a if k.startswith(prefix)]
    assert keys, prefix
    return any(not torch.equal(a[k], b[k]) for k in keys)


def copy_finished(finished: Path, dest: Path) -> Path:
    """A copy of the finished workflow with its results and Snakemake's records of them
    (modification times kept)."""
    copy_workflow(dest)
    shutil.copytree(finished / "results", dest / "results", symlinks=True)
    shutil.copytree(finished / ".snakemake" / "metadata", dest / ".snakemake" / "metadata")
    return dest


def test_rows_start_where_the_reference_starts_them(finished):
    """Start model, what trained and whether the last layer was loaded or fresh, per row."""
    runs = finished / RUNS
    balanced = model(finished, "balanced", "baseline")
    baseline = model(finished, "longtail", "baseline")
    # The baseline starts from the balanced model with a fresh predictor and trains it all.
    assert baseline["meta"]["start"] == sha256(runs / "balanced/baseline/seed0/model.pt")
    for part in ("backbone.", "rpn.", "roi_heads.box_head."):
        assert changed(balanced["state_dict"], baseline["state_dict"], part), part
    width = baseline["state_dict"]["roi_heads.box_predictor.cls_score.weight"].shape[0]
    assert width == baseline["meta"]["num_classes"] + 1 != balanced["meta"]["num_classes"] + 1
    # re-weight goes on from the baseline, every parameter, its last layer loaded.
    reweight = model(finished, "longtail", "reweight")
    assert reweight["meta"]["start"] == sha256(runs / "longtail/baseline/seed0/model.pt")
    for part in ("backbone.", "rpn.", "roi_heads.box_head."):
        assert changed(baseline["state_dict"], reweight["state_dict"], part), part
    # focal loss-cls retrains the baseline's own last layer; BAGS a fresh, wider one.
    focal = model(finished, "longtail", "focal_cls")
    key = "roi_heads.box_predictor.cls_score.weight"
    before, after = baseline["state_dict"][key], focal["state_dict"][key]
    similarity = torch.nn.functional.cosine_similarity(before.flatten(), after.flatten(), dim=0)
    assert similarity > 0.9  # loaded and fine-tuned, not drawn afresh
    bags = model(finished, "longtail", "bags")
    assert bags["state_dict"][key].shape[0] > before.shape[0]
    # EQL starts from the balanced model: C sigmoid logits, no background row.
    eql = model(finished, "longtail", "eql")
    assert eql["meta"]["start"] == sha256(runs / "balanced/baseline/seed0/model.pt")
    assert eql["state_dict"][key].shape[0] == eql["meta"]["num_classes"]
    # Post-hoc rows train nothing: every weight of the detector is the baseline's.
    for method in ("ncm_fc", "ncm_conv", "tau_norm_select"):
        other = model(finished, "longtail", method)
        assert other["meta"]["classifier"] != "softmax", method
        for name, value in baseline["state_dict"].items():
            assert torch.equal(value, other["state_dict"][name]), (method, name)


def test_changed_edges_rerun_only_the_groups_and_their_jobs(finished, tmp_path):
    workdir = copy_finished(finished, tmp_path / "wf")
    config = (workdir / "configs" / "test.yaml").read_text()
    (workdir / "edges.yaml").write_text(config + "groups: {edges: [8, 50]}\n")
    jobs = planned_jobs(snakemake(workdir, "--configfile", "edges.yaml", "--dry-run").stdout)
    # The BAGS rows on the config's groups: their groups files and everything after them.
    assert {"groups(method=bags)", "groups(method=bags_beta_all)",
            "groups(method=bags_box_head)"} <= set(jobs)  # fmt: skip
    assert "groups(method=bags_groups2)" not in jobs  # its own edges: unchanged
    assert "fit_head(dataset=longtail, method=bags, seed=0)" in jobs
    assert "train(dataset=longtail, method=bags_box_head, seed=0)" in jobs
    # Nothing else trains again (tau-norm's held-out choice is scored by the count bins).
    for job in jobs:
        rule = job.split("(")[0]
        if rule in ("train", "fit_head", "posthoc", "cache_features", "infer"):
            assert "method=bags" in job or "method=tau_norm_heldout" in job, job
    assert not any(j.startswith(("train(dataset=balanced", "cache_features")) for j in jobs)
    assert "train(dataset=longtail, method=baseline, seed=0)" not in jobs
    # A groups file that changed marks its BAGS row, and only it, for rerun (Snakemake
    # ignores a newer file whose content it has seen: the content changes here).
    changed_groups = workdir / "results/test/groups/bags_groups2.json"
    document = json.loads(changed_groups.read_text())
    changed_groups.write_text(json.dumps({**document, "beta": 4}))
    jobs = planned_jobs(snakemake(workdir, "--configfile", "configs/test.yaml", "--dry-run").stdout)
    assert "fit_head(dataset=longtail, method=bags_groups2, seed=0)" in jobs
    assert not any("fit_head" in j and "bags_groups2" not in j for j in jobs)


def test_a_finished_row_whose_lr_changed_trains_again_from_the_start(finished, tmp_path):
    """Its job reruns; the finished run's checkpoints neither stop it nor are resumed."""
    workdir = copy_finished(finished, tmp_path / "wf")
    (workdir / "lr.yaml").write_text("methods: {bags_box_head: {settings: {lr: 0.002}}}\n")
    before = model(workdir, "longtail", "bags_box_head")["state_dict"]
    target = "results/test/runs/longtail/bags_box_head/seed0/metrics.json"
    snakemake(workdir, target, "--configfile", "configs/test.yaml", "lr.yaml")
    log = (workdir / "results/test/logs/train/longtail_bags_box_head_seed0.log").read_text()
    assert "differs in train" in log and "starting over" in log
    assert not resumed_from(log)
    after = model(workdir, "longtail", "bags_box_head")["state_dict"]
    assert not all(torch.equal(before[k], after[k]) for k in before)


def test_a_figure_added_to_the_table_is_a_target_and_in_the_report(finished, tmp_path):
    workdir = copy_finished(finished, tmp_path / "wf")
    shutil.copytree(ROOT / "src", workdir / "src")
    table = workdir / "src" / "bags" / "analysis" / "figure_table.py"
    table.write_text(table.read_text().replace(
        "BY_NAME = ",
        'FIGURES += (FigureSpec("norms_again", "plot_weight_norms", "norms", '
        '"baseline_and_bags", "The same norms, drawn again."),)\nBY_NAME = ',
    ))  # fmt: skip
    env = {"PYTHONPATH": str(workdir / "src")}
    result = snakemake(workdir, "norms_again", "--configfile", "configs/test.yaml", env=env)
    assert (workdir / "results/test/figures/norms_again.png").read_bytes()[:4] == b"\x89PNG"
    assert "localrule plot_norms_again" in result.stdout + result.stderr  # local, as the others
    report = workdir / "report.zip"
    snakemake(workdir, "--configfile", "configs/test.yaml", "--report", str(report), env=env)
    with zipfile.ZipFile(report) as archive:
        names = archive.namelist()
        html = next(archive.read(n) for n in names if n.endswith("report.html")).decode()
    assert any(n.endswith("norms_again.png") for n in names)
    assert "The same norms, drawn again." in html


HOSTILE = "re-weight 'x' \"y\" $(touch pwned) `touch pwned2` ; touch pwned3 & a b"


def test_hostile_config_values_arrive_as_text(finished, tmp_path):
    """A method label with quotes, $(), backticks and spaces, and a dataset path of the same
    kind: each arrives as text, and nothing runs."""
    workdir = copy_finished(finished, tmp_path / "wf")
    config = (workdir / "configs" / "test.yaml").read_text()
    (workdir / "hostile.yaml").write_text(
        f"methods: {{reweight: {{label: {json.dumps(HOSTILE)}}}}}\n"
    )
    layers = ("--configfile", "configs/test.yaml", "hostile.yaml")
    snakemake(workdir, "comparison", "--forcerun", "table", *layers)
    table = pd.read_csv(workdir / "results/test/tables/comparison.csv")
    assert HOSTILE in table["method"].tolist()
    # A user's data folder whose name is a command.
    data = workdir / "my data $(touch pwned4)"
    shutil.copytree(finished / "results/test/data/longtail", data, symlinks=True)
    own = config.replace("experiment: test", "experiment: own").replace(
        """    source: synthetic
    synthetic:
      train_counts: [[3, 2, 5], [3, 10, 16], [2, 40, 60]]
      val_per_class: 3
      seed: 1""",
        f"""    source: coco
    coco:
      train: {json.dumps(str(data / "train.json"))}
      val: {json.dumps(str(data / "val.json"))}
      images: {json.dumps(str(data / "images"))}""",
    )
    (workdir / "own.yaml").write_text(own)
    snakemake(
        workdir, "results/own/counts/longtail.csv", "--configfile", "own.yaml", "hostile.yaml"
    )
    counts = pd.read_csv(workdir / "results/own/counts/longtail.csv")
    assert counts["instance_count"].sum() > 0
    for marker in ("pwned", "pwned2", "pwned3", "pwned4"):
        assert not list(workdir.rglob(marker)), marker
    assert not list(Path.cwd().glob("pwned*"))


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("experiment", "..", "experiment"),
        ("experiment", "a/../../b", "experiment"),
        ("groups", "{edges: [100, 10]}", "strictly increasing"),
        ("groups", "{beta: 0}", "beta"),
    ],
)
def test_bad_config_values_are_refused_before_any_job(tmp_path, key, value, says):
    workdir = copy_workflow(tmp_path / "wf")
    config = (workdir / "configs" / "test.yaml").read_text()
    if key == "experiment":
        config = config.replace("experiment: test", f"experiment: {json.dumps(value)}")
    else:
        config += f"{key}: {value}\n"
    (workdir / "bad.yaml").write_text(config)
    result = snakemake(workdir, "--configfile", "bad.yaml", "--dry-run", check=False)
    assert result.returncode != 0
    assert says in result.stdout + result.stderr
    assert not (workdir / "results").exists()
