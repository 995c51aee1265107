"""The Snakemake DAG itself: the tiny config end to end, targets, config errors, lint, format."""

import itertools
import json
import math
import re
import shlex
import subprocess

import pandas as pd
import pytest

from tests.helpers import BIN, ROOT, copy_workflow, methods_table, planned_jobs, snakemake

# The whole DAG's run is the session fixture ``finished`` (tests/conftest.py).
METRICS = ["AP", "APr", "APc", "APf", "AP1", "AP2", "AP3", "AP4", "AP_fixed", "AP_pool"]


def markdown_rows(path):
    """The rows of a Markdown table as dicts of cell text (any caption before it skipped)."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return [dict(zip(split[0], cells)) for cells in split[2:]]


def assert_cells_are_the_runs_metrics(workdir, table):
    """Every metric cell of a table (CSV and Markdown) is its run's metrics.json value."""
    methods = methods_table(workdir, "configs/test.yaml")
    method_of = {entry["label"]: name for name, entry in methods.items()}
    exp = workdir / "results" / "test"
    frame = pd.read_csv(exp / "tables" / f"{table}.csv")
    shown = markdown_rows(exp / "tables" / f"{table}.md")
    assert [row["method"] for row in shown] == frame["method"].tolist()
    for (_, row), text in zip(frame.iterrows(), shown):
        run = exp / "runs" / "longtail" / method_of[row["method"]] / "seed0"
        metrics = json.loads((run / "metrics.json").read_text())
        assert row["seeds"] == 1
        for column in METRICS:
            value = metrics[column]
            where = (table, row["method"], column)
            if value is None:
                assert math.isnan(row[column]) and text[column] == "-", where
            else:
                assert row[column] == pytest.approx(value, rel=1e-12), where
                assert text[column] == f"{value:.1f}", where
    return frame


def test_whole_dag_makes_every_table_figure_and_claim(finished):
    exp = finished / "results" / "test"
    table = assert_cells_are_the_runs_metrics(finished, "comparison")
    rows = ["baseline", "re-weight", "focal loss-cls", "NCM-fc", "NCM-conv", "tau-norm"]
    rows += ["tau-norm-select", "BAGS", "tau-norm, tau on held-out", "EQL"]  # the table's order
    rows += ["EQLv2", "Seesaw", "federated loss"]
    assert table["method"].tolist() == rows
    assert table["#"].tolist() == list(range(1, 14))
    assert list(table.columns) == ["#", "method", *METRICS, "seeds"]
    ablations = {
        "ablation_groups": ("groups", ["BAGS, 2 groups", "BAGS"]),
        "ablation_beta": ("beta", ["BAGS", "BAGS, beta all"]),
        "ablation_finetune": ("fine-tuned", ["BAGS", "BAGS, box head"]),
    }
    for name, (setting, methods) in ablations.items():
        ablation = assert_cells_are_the_runs_metrics(finished, name)
        assert ablation["method"].tolist() == methods, name
        assert list(ablation.columns)[:2] == ["method", setting]
    assert table["AP"].nunique() > 1  # the runs differ: a cell of the wrong run would show
    for name in ("comparison", *ablations):
        for ext in ("md", "tex"):
            assert (exp / "tables" / f"{name}.{ext}").stat().st_size > 0
    for name in ("weight_norms", "weight_norms_bags", "weight_norms_methods", "per_bin_ap"):
        assert (exp / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (exp / "figures" / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    claims = (exp / "claims.md").read_text()
    assert claims.count("| PASS |") + claims.count("| FAIL |") == 5
    run = exp / "runs" / "longtail" / "bags" / "seed0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"} <= set(metrics)
    assert {"AP1", "AP2", "AP3", "AP4"} <= set(metrics)
    assert (exp / "benchmarks" / "train" / "longtail_bags_seed0.tsv").is_file()
    assert (exp / "logs" / "train" / "longtail_bags_seed0.log").is_file()
    assert (exp / "cache" / "seed0" / "train.pt").is_file()  # kept for methods added later
    # tau was chosen on held-out training images: one row per tau tried.
    selection = pd.read_csv(
        exp / "runs" / "longtail" / "tau_norm_heldout" / "seed0" / "train_log.csv"
    )
    assert selection["tau"].tolist() == [0, 1] and selection["chosen"].sum() == 1


def test_classifier_level_methods_change_only_the_last_layer(finished):
    import torch

    runs = finished / "results" / "test" / "runs" / "longtail"
    baseline = torch.load(runs / "baseline" / "seed0" / "model.pt", weights_only=True)
    for method in ("bags", "focal_cls", "tau_norm"):
        other = torch.load(runs / method / "seed0" / "model.pt", weights_only=True)
        for key, value in baseline["state_dict"].items():
            if "cls_score" not in key:
                assert torch.equal(value, other["state_dict"][key]), (method, key)
        layer = [f"roi_heads.box_predictor.cls_score.{p}" for p in ("weight", "bias")]
        same = [torch.equal(baseline["state_dict"][k], other["state_dict"][k]) for k in layer]
        assert not all(same), method
    # Fine-tuning the box head leaves the backbone and the RPN as they were.
    box_head = torch.load(runs / "bags_box_head" / "seed0" / "model.pt", weights_only=True)
    for key, value in baseline["state_dict"].items():
        frozen = key.startswith(("backbone.", "rpn."))
        assert torch.equal(value, box_head["state_dict"][key]) == frozen, key


def test_several_seeds_plan_one_run_per_seed(tmp_path):
    workdir = copy_workflow(tmp_path)
    result = snakemake(
        workdir, "--configfile", "configs/test.yaml", "--config", "seeds=[0,1]", "--dry-run", "-p"
    )
    for seed in (0, 1):
        assert f"runs/longtail/bags/seed{seed}/metrics.json" in result.stdout
        assert f"cache/seed{seed}/train.pt" in result.stdout
    # The APr claim reads both seeds of the baseline and of BAGS.
    runs = "results/test/runs/longtail"
    for name in ("baseline", "bags"):
        both = f"--{name}-metrics {runs}/{name}/seed0/metrics.json {runs}/{name}/seed1/metrics.json"
        assert both in result.stdout, name
    # Every seed starts from its own balanced model; Figure 1 shows the first seed's.
    assert "runs/balanced/baseline/seed1/model.pt" in result.stdout
    assert "runs/balanced/baseline/seed1/weight_norms.csv" not in result.stdout


def test_the_scheduler_takes_the_baselines_first_then_the_longest_trainings(tmp_path):
    """Every other row waits for its dataset's baseline (RFS and EQL start from the balanced
    model, as the baseline does), and the short jobs should fill both cores at the end rather
    than one long training run alone: the priority that Snakemake's scheduler ranks ready jobs
    by first puts the baselines first, then the whole-detector trainings, then the box head's
    (a dry run prints it; a dry run's order is not the scheduler's)."""
    workdir = copy_workflow(tmp_path)
    dry_run = snakemake(workdir, "--dry-run").stdout
    priority = {}
    for block in dry_run.split("\n\n"):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.MULTILINE)
        match = re.search(r"wildcards: dataset=(\w+), method=(\w+), seed=\d+", block)
        if rule and match:
            rank = re.search(r"^\s+priority: (\d+)", block, re.MULTILINE)
            priority[f"{rule[1]} {match[1]}/{match[2]}"] = int(rank[1]) if rank else 0
    baselines = {"train balanced/baseline", "train longtail/baseline"}
    whole = {f"train longtail/{m}" for m in ("x2", "rfs", "rfs_finetune", "focal", "eql")}
    assert {priority[job] for job in baselines} == {max(priority.values())}
    assert max(priority.values()) > max(priority[job] for job in whole)
    assert min(priority[job] for job in whole) > priority["train longtail/bags_box_head"]
    assert priority["train longtail/bags_box_head"] > priority["fit_head longtail/bags"]


def test_rerun_has_nothing_to_do(finished):
    result = snakemake(finished, "--configfile", "configs/test.yaml", "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


def jobs_planned(workdir, *args):
    result = snakemake(workdir, "--configfile", "configs/test.yaml", "--dry-run", *args)
    jobs = planned_jobs(result.stdout)
    total = result.stdout.split("Job stats:")[1].split("total")[1].split()[0]
    assert len(jobs) == int(total), result.stdout  # every job of the plan was read
    return jobs


def data_jobs(*datasets):
    return [f"{rule}(dataset={d})" for d in datasets for rule in ("synthesize", "count")]


def run_jobs(rule, dataset, *methods):
    return [f"{rule}(dataset={dataset}, method={m}, seed=0)" for m in methods]


# What each named target plans from scratch with configs/test.yaml, job by job.
BASELINES = [
    *data_jobs("longtail", "balanced"),
    *run_jobs("train", "longtail", "baseline"),
    *run_jobs("train", "balanced", "baseline"),
]
POSTHOC = ("ncm_fc", "ncm_conv", "tau_norm", "tau_norm_select")
END_TO_END = ("eql", "eqlv2", "seesaw", "federated")  # beyond the paper, from the balanced model
BEYOND = (*END_TO_END, "tau_norm_heldout")
TARGET_JOBS = {
    "weight_norms": [
        *BASELINES,
        *run_jobs("norms", "longtail", "baseline"),
        *run_jobs("norms", "balanced", "baseline"),
        "plot_weight_norms()",
        "weight_norms()",
    ],
    # The claims compare BAGS with every row of the paper in the config (rows 1, 6, 9-14), and
    # rank it among every row of the comparison table.
    "claims": [
        *BASELINES,
        *run_jobs("train", "longtail", "reweight", *END_TO_END),
        *run_jobs("norms", "longtail", "baseline"),
        *run_jobs("norms", "balanced", "baseline"),
        *run_jobs("posthoc", "longtail", *POSTHOC, "tau_norm_heldout"),
        "heldout()",
        *run_jobs("infer", "longtail", "baseline", "reweight", *POSTHOC, *BEYOND),
        *run_jobs("evaluate", "longtail", "baseline", "reweight", "focal_cls", "bags"),
        *run_jobs("evaluate", "longtail", *POSTHOC, *BEYOND),
        "cache_features(seed=0)",
        "groups(method=bags)",
        *run_jobs("fit_head", "longtail", "bags", "focal_cls"),
        "check_claims()",
        "claims()",
    ],
    "ablation_beta": [
        *BASELINES,
        *run_jobs("evaluate", "longtail", "bags", "bags_beta_all"),
        "cache_features(seed=0)",
        "groups(method=bags)",
        "groups(method=bags_beta_all)",
        *run_jobs("fit_head", "longtail", "bags", "bags_beta_all"),
        "table(table=ablation_beta)",
        "ablation_beta()",
    ],
}


@pytest.mark.parametrize("target", sorted(TARGET_JOBS))
def test_named_target_plans_exactly_the_jobs_it_needs(tmp_path, target):
    workdir = copy_workflow(tmp_path)
    assert jobs_planned(workdir, target) == sorted(TARGET_JOBS[target])


def test_unknown_config_key_is_one_clear_error(tmp_path):
    workdir = copy_workflow(tmp_path)
    bad = (workdir / "configs" / "test.yaml").read_text() + "groups: {betta: 8}\n"
    (workdir / "bad.yaml").write_text(bad)
    result = snakemake(workdir, "--configfile", "bad.yaml", "--dry-run", check=False)
    assert result.returncode != 0
    assert "betta" in result.stderr + result.stdout
    assert not (workdir / "results").exists()


@pytest.mark.parametrize(
    ("baseline", "says"),
    [
        (
            "{epochs: 1, batch_size: 8, loss_images: 3}",
            "schedule 'baseline': batch_size 8 is not a multiple of loss_images 3",
        ),
        (
            "{epochs: 1, batch_size: 8, group_orientation: true}",
            "cached features, which keep no image orientations",
        ),
    ],
)
def test_a_loss_setting_that_cannot_apply_is_refused_before_any_job(tmp_path, baseline, says):
    workdir = copy_workflow(tmp_path)
    config = (workdir / "configs" / "test.yaml").read_text()
    old = "  baseline: {epochs: 1, batch_size: 8, lr: 0.02, warmup_iters: 2}"
    assert old in config
    (workdir / "bad.yaml").write_text(config.replace(old, f"  baseline: {baseline}"))
    result = snakemake(workdir, "--configfile", "bad.yaml", "--dry-run", check=False)
    assert result.returncode != 0
    assert says in result.stderr + result.stdout
    assert not (workdir / "results").exists()


def test_lint_has_no_findings():
    result = snakemake(ROOT, "--lint", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Congratulations" in output, output


def test_snakefmt_check_passes():
    files = [
        "Snakefile",
        *sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("workflow/rules/*.smk")),
    ]
    result = subprocess.run(
        [str(BIN / "snakefmt"), "--check", *files], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def dry_runs_of_the_default_and_layered(tmp_path, *layerings):
    """Dry runs of the default and of each layering (config files over it, in order), which
    must all plan the default's jobs."""
    workdir = copy_workflow(tmp_path)
    default = snakemake(workdir, "--dry-run", "-p").stdout
    runs = [default]
    for layers in layerings:
        args = ("--configfile", "config.yaml", *layers, "--dry-run", "-p")
        runs.append(snakemake(workdir, *args).stdout)
        assert planned_jobs(runs[-1]) == planned_jobs(default)
    return runs


def planned_options(dry_run, subcommand):
    """Each planned ``bags <subcommand>`` call's options, ``{"--flag": value}``."""
    calls = []
    for line in dry_run.splitlines():
        if f"bags {subcommand} " in line:
            words = shlex.split(line.split("Shell command:", 1)[1])
            calls.append(dict(itertools.pairwise(words)))  # a flag and the word after it
    return calls


def schedules_planned(dry_run):
    """Each planned training's run folder (``dataset/method``): (epochs, milestones, weight
    decay)."""
    schedules = {}
    for options in planned_options(dry_run, "train"):
        settings = json.loads(options["--settings"])
        run = options["--out"].split("/runs/")[1].rsplit("/", 2)[0]
        schedules[run] = (
            settings["epochs"],
            tuple(settings["milestones"]),
            settings["weight_decay"],
        )
    return schedules


def synthetic_specs(dry_run):
    """The spec each planned ``bags synthesize`` draws its set from, by dataset."""
    return {
        options["--out"].rsplit("/", 1)[1]: json.loads(options["--spec"])
        for options in planned_options(dry_run, "synthesize")
    }


def architectures(dry_run):
    return {options["--arch"] for options in planned_options(dry_run, "train")}


def test_the_default_trains_32_epochs_and_the_large_config_96_with_the_same_rows(tmp_path):
    """Every full training keeps the baseline's schedule; the long-tailed ones decay weights by
    2e-3 in the default, 1e-4 in the large config (the earlier default)."""
    default, large = dry_runs_of_the_default_and_layered(tmp_path, ["configs/large.yaml"])
    planned = schedules_planned(default)
    assert planned.pop("balanced/baseline") == (48, (32, 44), 1e-4)
    assert planned.pop("longtail/finetune_tail") == (27, (19,), 2e-3)
    assert len(planned) == 12 and set(planned.values()) == {(32, (21, 29), 2e-3)}
    large_planned = schedules_planned(large)
    assert large_planned.pop("balanced/baseline") == (24, (16, 22), 1e-4)
    assert large_planned.pop("longtail/finetune_tail") == (80, (56,), 1e-4)
    assert set(large_planned) == set(planned) and set(large_planned.values()) == {
        (96, (64, 88), 1e-4)
    }
    assert [json.loads(a) for a in architectures(default)] == [
        {"name": "small", "image_size": 64, "channels": 32, "representation": 128}
    ]
    assert [json.loads(a) for a in architectures(large)] == [
        {"name": "small", "image_size": 64, "channels": 64, "representation": 256}
    ]
    specs, earlier = synthetic_specs(default), synthetic_specs(large)
    assert specs["longtail"]["train_counts"] == [
        [16, 1, 5],
        [14, 10, 99],
        [8, 100, 400],
        [2, 1000, 1300],
    ]
    assert earlier["longtail"]["train_counts"][0] == [16, 2, 9]
    for dataset in ("longtail", "balanced"):
        sizes = ("min_size", "max_size", "min_objects", "max_objects")
        assert [specs[dataset][k] for k in sizes] == [10, 20, 3, 6]
        assert [earlier[dataset][k] for k in sizes] == [12, 26, 1, 4]
        assert specs[dataset]["tint_noise"] == earlier[dataset]["tint_noise"] == 30
    assert (specs["longtail"]["hues"], earlier["longtail"]["hues"]) == (12, 12)
    assert "results/large/" in large and "results/synthetic/" not in large
    # The synthetic sets train with torchvision's losses on every image: one loss call per
    # batch, anchors anywhere, smooth L1 beta 1/9, the data read as checked.
    for options in planned_options(default, "train"):
        settings = json.loads(options["--settings"])
        assert settings.get("loss_images") is None
        assert not settings.get("group_orientation", False)
        assert settings.get("rpn_allowed_border") is None
        assert settings.get("box_loss_beta", 1 / 9) == 1 / 9
        assert options["--train-filter"] == "checked"


def test_the_quick_and_distinct_configs_change_the_large_ones_schedules_and_colours(tmp_path):
    _, large, quick, distinct = dry_runs_of_the_default_and_layered(
        tmp_path,
        ["configs/large.yaml"],
        ["configs/large.yaml", "configs/quick.yaml"],
        ["configs/large.yaml", "configs/distinct.yaml"],
    )
    quick_planned = schedules_planned(quick)
    assert quick_planned.pop("balanced/baseline") == (24, (16, 22), 1e-4)
    assert quick_planned.pop("longtail/finetune_tail") == (20, (14,), 1e-4)
    assert set(quick_planned.values()) == {(24, (16, 22), 1e-4)}
    assert "results/quick/" in quick and "results/large/" not in quick
    earlier = synthetic_specs(distinct)
    assert (earlier["longtail"]["hues"], earlier["longtail"]["tint_noise"]) == (None, 12)
    assert earlier["balanced"]["tint_noise"] == 12
    planned, distinct_planned = schedules_planned(large), schedules_planned(distinct)
    assert distinct_planned.pop("balanced/baseline") == (12, (8, 11), 1e-4)
    del planned["balanced/baseline"]
    assert distinct_planned == planned  # only the balanced model's schedule differs
    assert "results/distinct/" in distinct and "results/large/" not in distinct


@pytest.mark.parametrize("name", ["lvis_v0.5", "lvis_v1"])
def test_paper_configs_plan_the_whole_dag_without_data(tmp_path, name):
    workdir = copy_workflow(tmp_path)
    result = snakemake(workdir, "--configfile", f"configs/{name}.yaml", "--dry-run", "-p")
    stats = result.stdout.split("Job stats:")[1].split("total")[0]
    for job in (
        "download",
        "lvis_annotations",
        "coco_image_folder",
        "import_coco_model",
        "train",
        "evaluate",
        "table",
        "check_claims",
    ):
        assert job in stats, job
    assert f"lvis_{name[5:]}_train.json.zip" in result.stdout
    weights = "resources/downloads/r50_fpn_coco/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"
    assert f"--weights {weights}" in result.stdout
    assert "--start results/" in result.stdout  # the baseline starts from the COCO model
    assert "--image-paths coco_url" in result.stdout
    assert "image_size" not in result.stdout  # the default config is not merged in
    # Every training as the reference's GPUs train: 2 images per loss call, batches of one
    # orientation, RPN anchors inside the image, smooth L1 beta 1, its reading of the data.
    reference = {
        "loss_images": 2,
        "group_orientation": True,
        "rpn_allowed_border": 0,
        "box_loss_beta": 1.0,
    }
    runs = set()
    for options in planned_options(result.stdout, "train"):
        settings = json.loads(options["--settings"])
        assert {k: settings[k] for k in reference} == reference
        assert options["--train-filter"] == "reference"
        runs.add(options["--out"].split("/runs/")[1].rsplit("/", 2)[0])
    assert {"longtail/baseline", "longtail/bags", "longtail/finetune_tail"} <= runs
    # Every job's shell becomes its Python process (exec): killing the job kills it, no orphan.
    commands = [
        line.split("Shell command:", 1)[1].strip()
        for line in result.stdout.splitlines()
        if "Shell command:" in line and "bags" in line
    ]
    assert len(commands) > 100 and all(c.startswith("exec ") for c in commands)


def test_users_own_coco_format_data_gets_counts_and_groups(tmp_path):
    from tests.helpers import make_tiny_dataset

    data = make_tiny_dataset(tmp_path / "mydata")
    # A plain COCO-format val: no LVIS fields; the pipeline adds them.
    val = json.loads((data / "val.json").read_text())
    for image in val["images"]:
        del image["neg_category_ids"], image["not_exhaustive_category_ids"]
    for category in val["categories"]:
        del category["frequency"]
    (data / "val.json").write_text(json.dumps(val))
    workdir = copy_workflow(tmp_path / "wf")
    config = (
        (workdir / "configs" / "test.yaml")
        .read_text()
        .replace(
            """  longtail:
    source: synthetic
    synthetic:
      train_counts: [[3, 2, 5], [3, 10, 16], [2, 40, 60]]
      val_per_class: 3
      seed: 1""",
            f"""  longtail:
    source: coco
    coco:
      train: {data / "train.json"}
      val: {data / "val.json"}
      images: {data / "images"}""",
        )
    )
    assert "source: coco" in config
    (workdir / "mine.yaml").write_text(config)
    metrics = "results/test/runs/longtail/baseline/seed0/metrics.json"
    snakemake(workdir, "results/test/groups/bags.json", metrics, "--configfile", "mine.yaml")
    groups = json.loads((workdir / "results" / "test" / "groups" / "bags.json").read_text())
    assert "APr" in json.loads((workdir / metrics).read_text())
    made = json.loads((workdir / "results/test/data/longtail/val.json").read_text())
    assert all("neg_category_ids" in image for image in made["images"])
    assert [len(g["classes"]) for g in groups["groups"]] == [2, 3]
    assert (workdir / "results" / "test" / "data" / "longtail" / "train.json").is_symlink()


def test_convergence_trains_each_run_once_more_from_itself_and_reuses_x2(tmp_path):
    """The default's test of converged schedules: the balanced model and finetune tail each
    trained once more from their own model on their own schedule, the baseline's second
    schedule being the x2 row; every tested model scored on its set's tuning split."""
    workdir = copy_workflow(tmp_path)
    dry_run = snakemake(workdir, "convergence", "--dry-run", "-p").stdout
    again = {}
    for options in planned_options(dry_run, "train"):
        if "/convergence/" in options["--out"]:
            run = options["--out"].split("/convergence/")[1].rsplit("/seed", 1)[0]
            again[run] = options
    assert sorted(again) == ["balanced/baseline", "longtail/finetune_tail"]
    once = {
        options["--out"].split("/runs/")[1].rsplit("/seed", 1)[0]: options
        for options in planned_options(dry_run, "train")
        if "/runs/" in options["--out"]
    }
    for run, options in again.items():
        assert options["--start"] == once[run]["--out"]
        assert options["--settings"] == once[run]["--settings"]  # its own schedule again
        assert json.loads(options["--method"])["last_layer"] == "loaded"
        assert options["--annotations"] == once[run]["--annotations"]
    scored = {o["--model-file"]: o["--annotations"] for o in planned_options(dry_run, "infer")}
    x2 = "results/synthetic/runs/longtail/x2/seed0/model.pt"
    assert scored[x2] == "results/synthetic/data/longtail/tuning/val.json"
    assert scored[again["balanced/baseline"]["--out"]].endswith("data/balanced/tuning/val.json")
    assert len(scored) == 6  # three runs, once and again


def test_convergence_table_reads_each_models_tuning_metrics(finished):
    runs = "convergence={runs: [balanced/baseline, longtail/baseline]}"
    snakemake(finished, "convergence", "--configfile", "configs/test.yaml", "--config", runs)
    exp = finished / "results" / "test"
    tuning = json.loads((exp / "data" / "longtail" / "tuning" / "val.json").read_text())
    val = json.loads((exp / "data" / "longtail" / "val.json").read_text())
    assert {a["bbox"][0] for a in tuning["annotations"]} != {
        a["bbox"][0] for a in val["annotations"]
    }
    assert (
        tuning["categories"]
        == json.loads((exp / "data" / "longtail" / "train.json").read_text())["categories"]
    )
    rows = pd.read_csv(exp / "tables" / "convergence.csv")
    assert rows["run"].tolist() == ["balanced model", "baseline"]
    for row, dataset in zip(rows.to_dict("records"), ["balanced", "longtail"]):
        folder = exp / "convergence" / dataset / "baseline" / "seed0"
        once = json.loads((folder / "once" / "metrics.json").read_text())
        again = json.loads((folder / "again" / "metrics.json").read_text())
        assert row["AP"] == pytest.approx(once["AP"]) and row["AP x2"] == pytest.approx(again["AP"])
    assert (exp / "convergence" / "longtail" / "baseline" / "seed0" / "again" / "model.pt").exists()
    assert (
        "| baseline | baseline, 1 epochs | 1 |" in (exp / "tables" / "convergence.md").read_text()
    )
