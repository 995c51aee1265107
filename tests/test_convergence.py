"""The test of converged schedules: x2's gain per run and seed, its mean, PASS or FAIL."""

import json
import math

import pandas as pd
import pytest

from bags.analysis.convergence import convergence_job


def write_metrics(path, ap, apr=None):
    path.write_text(json.dumps({"AP": ap, "APr": apr, "APc": None}))
    return str(path)


def test_gain_per_seed_its_mean_and_the_verdict(tmp_path):
    runs = []
    for seed, (once, again) in enumerate([(80.0, 81.0), (79.0, 81.4), (81.0, 81.9)]):
        runs.append(
            {
                "run": "baseline",
                "schedule": "baseline, 32 epochs",
                "seed": seed,
                "once": write_metrics(tmp_path / f"b{seed}.json", once, 60.0 + seed),
                "again": write_metrics(tmp_path / f"b{seed}x2.json", again, 61.0),
            }
        )
    # The balanced model has no rare classes: APr is None, its gain a dash.
    runs.append(
        {
            "run": "balanced model",
            "schedule": "pretrain, 24 epochs",
            "seed": 0,
            "once": write_metrics(tmp_path / "p.json", 85.0),
            "again": write_metrics(tmp_path / "px2.json", 87.0),
        }
    )
    convergence_job({"max_gain": 1.5, "runs": runs}, tmp_path / "convergence")
    rows = pd.read_csv(tmp_path / "convergence.csv")
    assert rows["AP gain"].round(6).tolist() == [1.0, 2.4, 0.9, 2.0]
    assert rows["APr gain"].round(6).tolist()[:3] == [1.0, 0.0, -1.0]
    assert math.isnan(rows["APr gain"].iloc[3])
    markdown = (tmp_path / "convergence.md").read_text()
    # mean (1.0 + 2.4 + 0.9) / 3 = 1.43 <= 1.5, though seed 1 alone is over the bar
    assert "| baseline | baseline, 32 epochs | 3 | +1.4 ± 0.8 | +0.0 | PASS |" in markdown
    assert "| balanced model | pretrain, 24 epochs | 1 | +2.0 | - | FAIL |" in markdown
    assert "| baseline | 1 | 79.0 | 81.4 | +2.4 | 61.0 | 61.0 | +0.0 |" in markdown


def test_a_malformed_metrics_file_is_named(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    good = write_metrics(tmp_path / "good.json", 1.0)
    run = {"run": "r", "schedule": "s", "seed": 0, "once": str(bad), "again": good}
    with pytest.raises(ValueError, match=r"bad\.json"):
        convergence_job({"max_gain": 1.5, "runs": [run]}, tmp_path / "out")
    assert not (tmp_path / "out.md").exists()
