import hashlib
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from bags.data.drawing import STYLES, colour_names, colour_rgb, paint
from bags.data.synthetic import (
    SyntheticSpec,
    covers_attributes,
    generate,
    tier_counts,
    tuning_split,
)
from bags.groups import assign_groups

SPEC = SyntheticSpec(
    train_counts=[[3, 2, 9], [3, 10, 99], [2, 100, 200], [1, 1000, 1000]], val_per_class=4, seed=5
)


def digest(root):
    """Of the images' pixels and the annotations under root (not of the spec they record, nor
    of the PNG encoder's bytes, which may differ between Pillow builds)."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "spec.json":
            h.update(path.relative_to(root).as_posix().encode())
            png = path.suffix == ".png"
            h.update(np.asarray(Image.open(path)).tobytes() if png else path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate(SPEC, root)
    return root


def test_tier_counts_are_log_spaced_within_each_tier():
    assert tier_counts([[3, 10, 1000]]) == [1000, 100, 10]
    assert tier_counts([[1, 5, 7]]) == [7]
    with pytest.raises(ValueError, match="tier"):
        tier_counts([[2, 9, 3]])


def test_counts_follow_the_spec_and_span_every_bin(dataset):
    train = json.loads((dataset / "train.json").read_text())
    counted = Counter(a["category_id"] for a in train["annotations"])
    assert sorted(counted.values()) == sorted(tier_counts(SPEC.train_counts))
    groups = assign_groups([counted[c["id"]] for c in train["categories"]])
    assert groups.sizes == [3, 3, 2, 1]


def test_category_records_match_the_annotations(dataset):
    train = json.loads((dataset / "train.json").read_text())
    for category in train["categories"]:
        boxes = [a for a in train["annotations"] if a["category_id"] == category["id"]]
        images = {a["image_id"] for a in boxes}
        assert category["instance_count"] == len(boxes)
        assert category["image_count"] == len(images)
        expected = "r" if len(images) <= 10 else "c" if len(images) <= 100 else "f"
        assert category["frequency"] == expected


def test_val_is_balanced_and_exhaustively_labelled(dataset):
    val = json.loads((dataset / "val.json").read_text())
    counted = Counter(a["category_id"] for a in val["annotations"])
    assert set(counted.values()) == {4}
    all_ids = {c["id"] for c in val["categories"]}
    present = {}
    for a in val["annotations"]:
        present.setdefault(a["image_id"], set()).add(a["category_id"])
    for image in val["images"]:
        assert set(image["neg_category_ids"]) == all_ids - present[image["id"]]
        assert image["not_exhaustive_category_ids"] == []


def test_boxes_lie_inside_images_and_files_exist(dataset):
    train = json.loads((dataset / "train.json").read_text())
    size = {i["id"]: (i["width"], i["height"]) for i in train["images"]}
    for a in train["annotations"]:
        x, y, w, h = a["bbox"]
        width, height = size[a["image_id"]]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= width and y + h <= height
    for image in train["images"]:
        assert (dataset / "images" / image["file_name"]).is_file()


def test_deterministic_from_seed(dataset, tmp_path):
    generate(SPEC, tmp_path / "again")
    assert digest(tmp_path / "again") == digest(dataset)
    other = SyntheticSpec(**{**SPEC.__dict__, "seed": 6})
    generate(other, tmp_path / "other")
    assert digest(tmp_path / "other") != digest(dataset)


def test_one_style_draws_the_data_drawn_before_styles_existed(dataset):
    # The digest of SPEC's files from the generator as it was before styles: the default tables
    # were computed on that data, and one style must not move a single draw.
    expected = "33296784e6341bc2c66524cfe2f6af6c88b163fc16aedd98eebdb75ac465c200"
    assert digest(dataset) == expected
    train = json.loads((dataset / "train.json").read_text())
    assert not any("style" in a for a in train["annotations"])


def styles_by_class(document):
    shown = {}
    for a in document["annotations"]:
        shown.setdefault(a["category_id"], set()).add(a["style"])
    return shown


def test_a_rare_class_trains_on_fewer_styles_than_val_shows(tmp_path):
    spec = SyntheticSpec(**{**SPEC.__dict__, "styles": 4, "rare_styles": 1, "val_per_class": 8})
    generate(spec, tmp_path)
    train, val = (json.loads((tmp_path / f"{s}.json").read_text()) for s in ("train", "val"))
    counts = {c["id"]: c["instance_count"] for c in train["categories"]}
    in_train, in_val = styles_by_class(train), styles_by_class(val)
    rare = [c for c, n in counts.items() if n < spec.rare_below]
    assert rare and all(len(in_train[c]) == 1 for c in rare)
    assert all(in_train[c] == set(STYLES) for c, n in counts.items() if n >= 50)
    assert set().union(*in_val.values()) == set(STYLES)
    unseen = sum(len(in_val[c] - in_train[c]) for c in rare)
    assert unseen >= len(rare)  # most rare classes meet new styles in val


def test_a_pretraining_set_shows_every_class_in_every_style(tmp_path):
    names = ["red_square", "blue_circle"]
    spec = SyntheticSpec([[2, 40, 40]], val_per_class=0, styles=3, seed=1)
    generate(spec, tmp_path, names)
    train = json.loads((tmp_path / "train.json").read_text())
    assert all(shown == set(STYLES[:3]) for shown in styles_by_class(train).values())


def test_styles_paint_the_whole_shape_in_its_colour_and_a_dark_shade():
    mask = np.ones((12, 12), bool)
    tint = np.array([200.0, 100.0, 50.0])
    solid, outlined = paint(mask, "solid", tint), paint(mask, "outlined", tint)
    assert (solid == tint).all()
    assert (outlined[0, 0] == tint).all() and np.allclose(outlined[6, 6], tint * 0.4)
    for style in ("striped", "checked"):
        colours = {tuple(v) for v in paint(mask, style, tint).reshape(-1, 3)}
        assert colours == {tuple(tint), tuple(tint * 0.4)}


@pytest.mark.parametrize("styles, rare_styles", [(5, 1), (2, 3), (0, 1)])
def test_style_counts_out_of_range_are_refused(styles, rare_styles):
    with pytest.raises(ValueError, match="rare_styles <= styles"):
        SyntheticSpec([[1, 5, 5]], styles=styles, rare_styles=rare_styles)


def test_hues_name_colours_evenly_spaced_around_the_wheel():
    assert colour_names(4) == ["hue000", "hue090", "hue180", "hue270"]
    red, green = colour_rgb("hue000"), colour_rgb("hue120")
    assert red.argmax() == 0 and green.argmax() == 1
    assert np.allclose(red, [0.9 * 255, 0.9 * 0.2 * 255, 0.9 * 0.2 * 255])
    for bad in ("hue360", "hueish", "purple"):
        with pytest.raises(ValueError, match="unknown synthetic colour"):
            colour_rgb(bad)


def test_a_long_tail_of_hues_covers_every_shape_and_hue_outside_its_rare_classes(tmp_path):
    spec = SyntheticSpec(**{**SPEC.__dict__, "hues": 5})
    generate(spec, tmp_path / "longtail")
    categories = json.loads((tmp_path / "longtail" / "train.json").read_text())["categories"]
    names = [c["name"] for c in categories]
    assert all(name.split("_")[0] in colour_names(5) for name in names)
    common = [c["name"] for c in categories if c["instance_count"] >= spec.rare_below]
    assert covers_attributes(common, names)
    generate(SyntheticSpec([[2, 5, 5]], val_per_class=0), tmp_path / "pretraining", common[:2])


def mean_colours(root):
    """Each object's mean colour (the sets below draw squares only, which fill their boxes)."""
    train = json.loads((root / "train.json").read_text())
    files = {i["id"]: i["file_name"] for i in train["images"]}
    colours = []
    for a in train["annotations"]:
        x, y, w, h = (int(v) for v in a["bbox"])
        pixels = np.asarray(Image.open(root / "images" / files[a["image_id"]]), float)
        colours.append(pixels[y + 2 : y + h - 2, x + 2 : x + w - 2].reshape(-1, 3).mean(0))
    return np.array(colours)


def test_tint_noise_spreads_a_classs_colour(tmp_path):
    spread = {}
    for noise in (0, 40):
        spec = SyntheticSpec([[1, 40, 40]], val_per_class=0, max_objects=1, tint_noise=noise)
        generate(spec, tmp_path / str(noise), ["red_square"])
        spread[noise] = mean_colours(tmp_path / str(noise)).std(0).mean()
    assert spread[0] < 2 < 25 < spread[40]


def test_images_hold_between_the_fewest_and_most_objects_asked(tmp_path):
    packed = SyntheticSpec(**{**SPEC.__dict__, "min_objects": 3, "max_objects": 6})
    generate(packed, tmp_path / "packed")
    for split in ("train", "val"):
        document = json.loads((tmp_path / "packed" / f"{split}.json").read_text())
        per_image = Counter(a["image_id"] for a in document["annotations"])
        counts = [per_image[image["id"]] for image in document["images"]]
        assert max(counts) == 6 and min(counts[:-1]) == 3  # the last image takes what is left
        assert len(document["annotations"]) == sum(counts)


@pytest.mark.parametrize("fewest, most", [(0, 4), (5, 4)])
def test_an_impossible_object_count_is_refused(fewest, most):
    with pytest.raises(ValueError, match="objects"):
        SyntheticSpec([[1, 5, 5]], min_objects=fewest, max_objects=most)


def test_a_set_records_the_spec_it_was_drawn_from(dataset, tmp_path):
    recorded = json.loads((dataset / "spec.json").read_text())
    assert SyntheticSpec(**recorded) == SPEC


def test_a_tuning_split_draws_new_instances_by_the_sets_own_spec(dataset, tmp_path):
    noisy = SyntheticSpec(**{**SPEC.__dict__, "styles": 2, "tint_noise": 30.0})
    generate(noisy, tmp_path / "set")
    tuning_split(tmp_path / "set", tmp_path / "tuning", per_class=3, seed=99)
    train, tuning = (
        json.loads(path.read_text())
        for path in (tmp_path / "set" / "train.json", tmp_path / "tuning" / "val.json")
    )
    assert tuning["categories"] == train["categories"]  # the long tail's frequencies
    assert Counter(a["category_id"] for a in tuning["annotations"]) == dict.fromkeys(
        [c["id"] for c in train["categories"]], 3
    )
    drawn = json.loads((tmp_path / "tuning" / "spec.json").read_text())
    assert (drawn["styles"], drawn["tint_noise"], drawn["seed"]) == (2, 30.0, 99)
