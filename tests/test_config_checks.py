"""A stranger's config is refused before any job when it is not what it seems: a key given twice,
YTE templating, a number that is not finite, a name with a final newline, a label that would
become an option, a pair out of order, an output over an input."""

from __future__ import annotations

import json
import math

import pytest

from bags.analysis.figures import plot_norms_comparison
from bags.analysis.tables import _tex_escape
from bags.cli import main
from bags.config_checks import check_config_file, non_finite
from tests.helpers import copy_workflow, snakemake


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("experiment: a\nschedules:\n  baseline: {epochs: 1}\nexperiment: b\n")
    with pytest.raises(ValueError, match=f"{path}: line 4: key 'experiment' repeats .* line 1"):
        check_config_file(path)
    path.write_text("methods:\n  x: {label: a, label: b}\n")
    with pytest.raises(ValueError, match="key 'label' repeats"):
        check_config_file(path)
    path.write_text("a: {b: 1}\nc: {b: 2}\n")  # the same key in two mappings is fine
    check_config_file(path)


def test_yte_and_broken_yaml_are_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("__use_yte__: true\nexperiment: x\n")
    with pytest.raises(ValueError, match="asks for YTE templating"):
        check_config_file(path)
    path.write_text("experiment: [unclosed\n")
    with pytest.raises(ValueError, match=f"{path}: not valid YAML"):
        check_config_file(path)


def test_non_finite_numbers_are_found_where_they_are():
    config = {"a": 1.5, "b": {"c": [0.1, math.nan]}, "d": math.inf, "e": "nan", "f": True}
    assert non_finite(config) == ["config.b.c[1]", "config.d"]


CONFIG = "configs/test.yaml"
SCHEDULE = "  baseline: {epochs: 1, batch_size: 8, lr: 0.02, warmup_iters: 2}"
LABEL = "  tau_norm_heldout: {posthoc_options: {taus: [0, 1]}}"


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        (SCHEDULE, SCHEDULE + "\n  baseline: {epochs: 2}", "key 'baseline' repeats"),
        (SCHEDULE, SCHEDULE.replace("0.02", ".nan"), "schedules.baseline.lr must be a finite"),
        (SCHEDULE, SCHEDULE.replace("0.02", "-.inf"), "schedules.baseline.lr must be a finite"),
        (LABEL, LABEL.replace("{", '{label: "held\\n", '), "held\\n"),
        (LABEL, LABEL.replace("{", "{label: -held, "), "-held"),
        ("threads: 1", "threads: 1\n__use_yte__: false", "asks for YTE templating"),
    ],
    ids=["repeated key", "NaN", "infinity", "final newline", "leading dash", "YTE"],
)
def test_a_bad_config_file_stops_the_dag_before_any_job(tmp_path, old, new, says):
    workdir = copy_workflow(tmp_path)
    text = (workdir / CONFIG).read_text()
    assert old in text
    (workdir / "bad.yaml").write_text(text.replace(old, new, 1))
    result = snakemake(workdir, "--configfile", "bad.yaml", "--dry-run", check=False)
    assert result.returncode != 0
    assert says in result.stdout + result.stderr
    assert not (workdir / "results").exists()


@pytest.mark.parametrize(
    ("layer", "says"),
    [
        (
            {"datasets": {"longtail": {"source": "synthetic", "synthetic": {
                "train_counts": [[2, 9, 3]]}}}},
            "datasets.longtail.synthetic: train_counts tier [2, 9, 3]: fewest exceeds most",
        ),
        (
            {"datasets": {"longtail": {"source": "synthetic", "synthetic": {
                "train_counts": [[2, 3, 9]], "min_size": 30, "max_size": 20}}}},
            "datasets.longtail.synthetic: min_size (30) must not exceed max_size (20)",
        ),
        (
            {"methods": {"reweight": {"label": "re-weight", "loss": "reweight",
                                      "loss_options": {"low": 5, "high": 0.1}}}},
            "method reweight: loss_options: low (5) must not exceed high (0.1)",
        ),
        (
            {"methods": {"baseline": {"label": "baseline", "posthoc_options": {"tau": 1}}}},
            "On instance['methods']['baseline']['posthoc_options']",
        ),
        (
            {"methods": {"tau_norm": {"label": "tau", "train": "none", "posthoc": "tau_norm",
                                      "posthoc_options": {"tau": [1]}}}},
            "On instance['methods']['tau_norm']['posthoc_options']['tau']",
        ),
        ({"seeds": [2**32]}, "On instance['seeds'][0]"),
        ({"inference": {"score_thresh": 5}}, "On instance['inference']['score_thresh']"),
        ({"model": {"anchor_sizes": []}}, "On instance['model']['anchor_sizes']"),
        ({"model": {"image_size": 10**6}}, "On instance['model']['image_size']"),
        ({"schedules": {"baseline": {"epochs": 1, "milestones": [40]}}},
         "milestones [40] come after the last epoch (1)"),
        ({"threads": 10**20}, "On instance['threads']"),
    ],
    ids=["tier", "box sizes", "clip", "post-hoc options of a trained row", "tau a list",
         "seed past 32 bits", "score threshold 5", "no anchor sizes", "image size huge",
         "milestone after the last epoch", "threads 10**20"],
)  # fmt: skip
def test_values_out_of_order_or_range_stop_the_dag_before_any_job(tmp_path, layer, says):
    workdir = copy_workflow(tmp_path)
    (workdir / "layer.yaml").write_text(json.dumps(layer))
    result = snakemake(workdir, "--configfile", CONFIG, "layer.yaml", "--dry-run", check=False)
    assert result.returncode != 0
    assert says in result.stdout + result.stderr
    assert not (workdir / "results").exists()


def test_no_command_writes_over_its_input(tmp_path, capsys):
    annotations = tmp_path / "a.json"
    text = '{"images": [], "annotations": [], "categories": [{"id": 1}]}'
    annotations.write_text(text)
    same = tmp_path / "sub" / ".." / "a.json"
    assert main(["count", "--annotations", str(annotations), "--out", str(same),
                 "--on-bad", "stop"]) == 1  # fmt: skip
    assert "--out" in capsys.readouterr().err and annotations.read_text() == text
    assert main(["count", "--annotations", str(annotations), "--out", str(tmp_path / "c.csv"),
                 "--on-bad", "stop"]) == 0  # fmt: skip


def test_labels_are_written_verbatim_in_tex_and_figures(tmp_path):
    assert _tex_escape("a^b~c_d") == "a\\textasciicircum{}b\\textasciitilde{}c\\_d"
    import pandas as pd

    norms = pd.DataFrame({"category_id": [1, 2], "name": ["a", "b"], "instance_count": [5, 50],
                          "norm": [1.0, 2.0]})  # fmt: skip
    label = "BAGS $\\notacommand{$"  # bad mathtext, were it read as mathtext
    plot_norms_comparison({label: norms, "base": norms}, tmp_path / "fig")
    assert (tmp_path / "fig.png").stat().st_size > 0
