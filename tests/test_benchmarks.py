"""The benchmarks run (here on the CPU, at a small size) and print what they claim to."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_r50_fpn_speed_trains_and_infers_the_recipe_detector(tmp_path):
    out = tmp_path / "r50.json"
    # fp32 only: bf16 on a CPU without AMX takes minutes even at this size.
    args = ["--device", "cpu", "--size", "128", "96", "--classes", "30", "--steps", "1",
            "--warmup", "1", "--amp", "none", "--train-batch", "4",
            "--losses", "torchvision", "reference", "--out", str(out)]  # fmt: skip
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "r50_fpn_speed.py"), *args],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    results = json.loads(out.read_text())
    assert results["size"] == [128, 96] and results["classes"] == 30
    rows = [(row["amp"], row["losses"]) for row in results["rows"]]
    assert rows == [("none", "torchvision"), ("none", "reference")]
    first = results["rows"][0]["train"]["images_per_s"]
    for row in results["rows"]:
        assert row["train"]["images_per_s"] > 0 and row["inference"]["images_per_s"] > 0
        assert row["train"]["ratio"] == pytest.approx(row["train"]["images_per_s"] / first)
        assert 0 < row["inference"]["detections_per_image"] <= 300
        assert 0 < row["inference"]["postprocess_share"] < 1


def test_nms_speed_times_both_ways_and_finds_them_equal():
    args = ["--device", "cpu", "--proposals", "50", "--classes", "30", "3", "--images", "1"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "nms_speed.py"), *args],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    rows = done.stdout.strip().splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["30", "3"]
    assert all(row.split()[-1] == "True" for row in rows)


def test_dag_times_sums_each_rule_and_keeps_one_seed_apart(tmp_path):
    jobs = {"train/longtail_baseline_seed0": 100.0, "train/longtail_baseline_seed1": 90.0,
            "train/longtail_x2_seed1": 80.0, "train/longtail_x2_seed10": 70.0,
            "cache/seed1": 5.0, "tables/comparison": 1.0}  # fmt: skip
    for name, seconds in jobs.items():
        path = tmp_path / "benchmarks" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\tmax_rss\n{seconds}\t{seconds * 10}\n")
    script = [sys.executable, str(ROOT / "benchmarks" / "dag_times.py"), str(tmp_path)]

    def table(*args):
        done = subprocess.run([*script, *args], check=True, capture_output=True, text=True)
        return {
            line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:5]]
            for line in done.stdout.splitlines()
            if line.startswith("| ") and not line.startswith(("| rule", "| ---"))
        }

    everything = table()
    assert everything["train"] == ["4", "340", "70.0"]
    assert everything["**sum**"][:2] == ["6", "**346**"]
    seed1 = table("--seed", "1")
    assert seed1 == {"train": ["2", "170", "80.0"], "cache": ["1", "5", "5.0"],
                     "**sum**": ["3", "**175**", ""]}  # fmt: skip
    missing = subprocess.run([*script, "--seed", "7"], capture_output=True, text=True)
    assert missing.returncode != 0 and "of seed 7" in missing.stderr


def work_tables(stdout):
    """The benchmark's two tables, ``{training: (passes, GFLOP per image, work)}`` each."""
    tables = []
    for block in stdout.split("### ")[1:]:
        rows = {}
        for line in block.splitlines():
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if line.startswith("| ") and cells[1].replace(",", "").isdigit():
                rows[cells[0]] = tuple(float(c.replace(",", "")) for c in cells[1:])
        tables.append(rows)
    return tables


def test_training_work_counts_each_trainings_passes_and_the_ratio(tmp_path):
    longer = tmp_path / "longer.yaml"
    longer.write_text("schedules:\n  baseline: {epochs: 3}\n")
    args = ["--config", "configs/test.yaml", "--against", "configs/test.yaml", str(longer)]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "training_work.py"), *args],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    short, long = work_tables(done.stdout)
    assert set(short) == set(long) and "longtail/baseline" in short
    for run, (passes, flops, _work) in short.items():
        again = long[run]
        assert again[1] == flops  # the same model and batch: the same FLOPs per image
        if run in ("balanced/baseline", "longtail/feature cache"):
            assert again[0] == passes  # the pretrain schedule and the cache do not change
        else:
            assert again[0] == 3 * passes  # three epochs of the baseline schedule for one
    per_image = {run: row[1] for run, row in short.items()}
    assert per_image["longtail/bags"] < per_image["longtail/bags_box_head"]
    assert per_image["longtail/bags_box_head"] < per_image["longtail/baseline"]
    assert per_image["longtail/feature cache"] < per_image["longtail/baseline"]
    totals = [sum(row[0] * row[1] for row in table.values()) for table in (short, long)]
    ratio = float(done.stdout.rsplit("**", 2)[-2])
    assert ratio == pytest.approx(totals[0] / totals[1], abs=2e-3)
