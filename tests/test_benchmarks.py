"""The GPU benchmark of the paper recipe's detector runs (here on the CPU, at a small size)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_r50_fpn_speed_trains_and_infers_the_recipe_detector(tmp_path):
    out = tmp_path / "r50.json"
    args = ["--device", "cpu", "--size", "128", "96", "--classes", "30", "--steps", "1",
            "--warmup", "1", "--out", str(out)]  # fmt: skip
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "r50_fpn_speed.py"), *args],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    results = json.loads(out.read_text())
    assert results["size"] == [128, 96] and results["classes"] == 30
    assert [row["amp"] for row in results["rows"]] == ["none", "bf16"]
    for row in results["rows"]:
        assert row["train"]["images_per_s"] > 0 and row["inference"]["images_per_s"] > 0
        assert 0 < row["inference"]["detections_per_image"] <= 300
        assert 0 < row["inference"]["postprocess_share"] < 1
