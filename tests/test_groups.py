import json
import warnings

import pytest
import torch

from bags.groups import Groups, assign_groups

# classes 1..6 with counts: 5 -> bin [0,10), 50 -> [10,100), 2000 -> [1000,inf), ...
COUNTS = [5, 50, 2000, 3, 150, 10]


def test_bins_layout_and_label_maps():
    groups = assign_groups(COUNTS)
    assert groups.num_classes == 6
    assert groups.members == ((1, 4), (2, 6), (5,), (3,))
    assert groups.sizes == [2, 2, 1, 1]
    assert groups.bins == ((0, 10), (10, 100), (100, 1000), (1000, None))
    assert groups.num_groups == 5
    assert groups.num_logits == 6 + 1 + 5 == 12
    # layout: [bg, fg | o, c1, c4 | o, c2, c6 | o, c5 | o, c3]
    assert groups.widths == [2, 3, 3, 2, 2]
    assert groups.class_logit.tolist() == [3, 6, 11, 4, 9, 7]
    assert groups.class_group.tolist() == [0, 1, 2, 4, 1, 3, 2]
    expected_targets = [
        [0, 0, 0, 0, 0],  # background: bg in group 0, others everywhere
        [1, 1, 0, 0, 0],
        [1, 0, 1, 0, 0],
        [1, 0, 0, 0, 1],
        [1, 2, 0, 0, 0],
        [1, 0, 0, 1, 0],
        [1, 0, 2, 0, 0],
    ]
    assert groups.targets.tolist() == expected_targets


def test_edge_value_goes_to_the_upper_bin():
    groups = assign_groups([9, 10, 99, 100, 999, 1000])
    assert groups.members == ((1,), (2, 3), (4, 5), (6,))


def test_empty_bins_are_dropped():
    groups = assign_groups([1, 2, 5000])
    assert groups.members == ((1, 2), (3,))
    assert groups.bins == ((0, 10), (1000, None))
    assert groups.num_logits == 3 + 1 + 3
    assert groups.widths == [2, 3, 2]


def test_custom_edges_two_and_eight_groups():
    counts = [1, 7, 20, 60, 120, 600, 2000, 9000]
    assert assign_groups(counts, edges=[100]).sizes == [4, 4]
    eight = assign_groups(counts, edges=[5, 10, 50, 100, 500, 1000, 5000])
    assert eight.sizes == [1] * 8
    assert eight.num_logits == 8 + 1 + 9


def test_zero_count_goes_to_lowest_group_with_warning():
    with pytest.warns(UserWarning, match="no training instance"):
        groups = assign_groups([0, 500])
    assert groups.members == ((1,), (2,))
    assert groups.bins[0] == (0, 10)


def test_no_warning_without_zero_counts():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assign_groups(COUNTS)


def test_json_round_trip():
    groups = assign_groups(COUNTS, edges=(10, 100))
    again = Groups.from_json(groups.to_json())
    assert again == groups
    assert torch.equal(again.class_logit, groups.class_logit)
    assert json.loads(groups.to_json())["num_logits"] == groups.num_logits


@pytest.mark.parametrize(
    ("counts", "edges", "message"),
    [
        ([3, -1], (10,), "must be >= 0"),
        ([3, 4], (100, 10), "strictly increasing"),
        ([3, 4], (10, 10), "strictly increasing"),
        ([3, 4], (0, 10), "positive"),
        ([], (10,), "empty"),
    ],
)
def test_bad_input(counts, edges, message):
    with pytest.raises(ValueError, match=message):
        assign_groups(counts, edges)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        json.dumps(
            {"num_classes": 3, "edges": [10], "groups": [{"bin": [0, 10], "classes": [1, 2]}]}
        ),
        json.dumps(
            {"num_classes": 2, "edges": [10], "groups": [{"bin": [0, 10], "classes": [2, 1]}]}
        ),
        json.dumps(
            {
                "num_classes": 1,
                "edges": [],
                "num_logits": 9,
                "groups": [{"bin": [0, None], "classes": [1]}],
            }
        ),
    ],
)
def test_bad_json(text):
    with pytest.raises(ValueError):
        Groups.from_json(text)


@pytest.mark.parametrize(
    ("name", "sizes", "logits"),
    [
        ("lvis_v0.5_train_category_stats.json", [294, 453, 302, 181], 1236),
        ("lvis_v1_train_category_stats.json", [200, 412, 334, 257], 1209),
    ],
)
def test_real_lvis_statistics(lvis_data, name, sizes, logits):
    categories = json.loads((lvis_data / name).read_text())["categories"]
    categories.sort(key=lambda c: c["id"])
    groups = assign_groups([c["instance_count"] for c in categories])
    assert groups.sizes == sizes
    assert groups.num_logits == logits
