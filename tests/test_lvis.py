"""Real LVIS annotations through the dataset, the evaluator and the R50-FPN helpers."""

import json
import zipfile

import pytest
import torch
from PIL import Image

from bags.cli import main
from bags.data.dataset import DetectionDataset
from bags.engine.model_files import load_model
from bags.evaluation import evaluate


@pytest.fixture(scope="module")
def lvis_val(tmp_path_factory):
    """The 100-image LVIS v0.5 val file with blank images written at the listed sizes."""
    from tests.conftest import LVIS_DATA

    annotations = LVIS_DATA / "lvis_v0.5_val_100.json"
    root = tmp_path_factory.mktemp("coco")
    for image in json.loads(annotations.read_text())["images"]:
        folder, name = image["coco_url"].split("/")[-2:]
        (root / folder).mkdir(exist_ok=True)
        Image.new("RGB", (image["width"], image["height"]), (90, 90, 90)).save(root / folder / name)
    return annotations, root


def test_dataset_reads_real_lvis_by_coco_url(lvis_val):
    annotations, root = lvis_val
    dataset = DetectionDataset(annotations, root, image_paths="coco_url")
    assert len(dataset) == 100 and dataset.num_classes == 1230
    data = json.loads(annotations.read_text())
    first = data["images"][0]
    image, target = dataset[0]
    assert image.shape == (3, first["height"], first["width"])
    boxes = [a for a in data["annotations"] if a["image_id"] == first["id"]]
    assert len(target["boxes"]) == len(boxes)
    x, y, w, h = boxes[0]["bbox"]
    assert torch.allclose(target["boxes"][0], torch.tensor([x, y, x + w, y + h]))
    assert dataset.category_of[int(target["labels"][0])] == boxes[0]["category_id"]


def test_targets_back_through_the_evaluator_score_100(lvis_val, tmp_path):
    annotations, root = lvis_val
    dataset = DetectionDataset(annotations, root, image_paths="coco_url")
    results = []
    for index in range(len(dataset)):
        _, target = dataset[index]
        for box, label in zip(target["boxes"].tolist(), target["labels"].tolist()):
            x1, y1, x2, y2 = box
            results.append(
                {
                    "image_id": int(target["image_id"]),
                    "category_id": dataset.category_of[label],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": 1.0,
                }
            )
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    stats = json.loads(
        (SHARED := annotations.parent / "lvis_v0.5_train_category_stats.json").read_text()
    )
    counts = {c["id"]: c["instance_count"] for c in stats["categories"]}
    metrics = evaluate(annotations, path, counts)
    assert metrics["AP"] == pytest.approx(100.0, abs=0.01), SHARED


def test_missing_image_named_with_its_id(lvis_val, tmp_path):
    annotations, _ = lvis_val
    with pytest.raises(FileNotFoundError, match=r"missing image \(image id \d+"):
        DetectionDataset(annotations, tmp_path, image_paths="coco_url")


def torchvision_coco_layout():
    """A Faster R-CNN built as torchvision builds the one its COCO checkpoint holds."""
    from torchvision.models import resnet50
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import FrozenBatchNorm2d

    body = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    return FasterRCNN(_resnet_fpn_extractor(body, 3), num_classes=91)


def test_import_coco_keeps_the_rows_of_the_dataset_categories(tmp_path):
    torch.manual_seed(0)
    coco = torchvision_coco_layout()
    weights = tmp_path / "coco.pth"
    torch.save(coco.state_dict(), weights)
    categories = [{"id": i, "name": str(i)} for i in (1, 3, 90)]
    train = tmp_path / "instances.json"
    train.write_text(json.dumps({"images": [], "annotations": [], "categories": categories}))
    out = tmp_path / "model.pt"
    arch = json.dumps({"name": "r50_fpn"})
    assert (
        main(
            [
                "import-coco",
                "--weights",
                str(weights),
                "--annotations",
                str(train),
                "--arch",
                arch,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    model, meta = load_model(out)
    assert meta["num_classes"] == 3
    old = coco.roi_heads.box_predictor
    new = model.roi_heads.box_predictor
    assert torch.equal(new.cls_score.weight, old.cls_score.weight[[0, 1, 3, 90]])
    assert torch.equal(new.bbox_pred.weight[4:8], old.bbox_pred.weight[4:8])
    assert torch.equal(new.bbox_pred.weight[-4:], old.bbox_pred.weight[360:364])
    backbone = "backbone.body.layer1.0.conv1.weight"
    assert torch.equal(model.state_dict()[backbone], coco.state_dict()[backbone])


def test_r50_fpn_starts_from_coco_weights_with_a_new_predictor(tmp_path):
    from bags.builders import build_detector

    torch.manual_seed(0)
    coco = torchvision_coco_layout()
    weights = tmp_path / "coco.pth"
    torch.save(coco.state_dict(), weights)
    model = build_detector({"name": "r50_fpn", "pretrained": "coco"}, 1230, weights)
    assert model.roi_heads.box_predictor.cls_score.out_features == 1231
    key = "backbone.fpn.layer_blocks.0.0.weight"
    assert torch.equal(model.state_dict()[key], coco.state_dict()[key])
    assert model.transform.min_size == (800,) and model.transform.max_size == 1333
    assert model.roi_heads.detections_per_img == 300
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not torchvision's COCO"):
        build_detector({"name": "r50_fpn"}, 5, bad)


def test_place_unzip_and_link(tmp_path):
    archive = tmp_path / "ann.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("lvis_v1_val.json", '{"a": 1}')
        z.writestr("val2017/000000000001.jpg", b"jpeg")
    out = tmp_path / "data" / "val.json"
    assert (
        main(
            ["place", "--member", "lvis_v1_val.json", "--archive", str(archive), "--out", str(out)]
        )
        == 0
    )
    assert out.read_text() == '{"a": 1}'
    assert (
        main(
            [
                "place",
                "--member",
                "missing.json",
                "--archive",
                str(archive),
                "--out",
                str(tmp_path / "x.json"),
            ]
        )
        == 1
    )
    assert not (tmp_path / "x.json").exists()
    images = tmp_path / "coco" / "val2017"
    assert (
        main(
            [
                "unzip",
                "--archive",
                str(archive),
                "--member-prefix",
                "val2017/",
                "--out",
                str(images),
            ]
        )
        == 0
    )
    assert (images / "000000000001.jpg").read_bytes() == b"jpeg"
    assert [p.name for p in images.parent.iterdir()] == ["val2017"]
    linked = tmp_path / "data" / "images"
    assert main(["link", "--source", str(tmp_path / "coco"), "--out", str(linked)]) == 0
    assert linked.is_symlink() and (linked / "val2017" / "000000000001.jpg").is_file()
    assert (
        main(
            [
                "place",
                "--member",
                "val.json",
                "--existing-folder",
                str(tmp_path / "data"),
                "--out",
                str(tmp_path / "linked.json"),
            ]
        )
        == 0
    )
    assert (tmp_path / "linked.json").resolve() == out.resolve()


def test_paper_config_model_section_builds():
    import yaml

    from bags.builders import build_detector
    from tests.test_workflow import ROOT

    arch = yaml.safe_load((ROOT / "configs" / "lvis_v1.yaml").read_text())["model"]
    model = build_detector(arch, 1203)
    assert model.roi_heads.box_predictor.cls_score.out_features == 1204
    assert model.rpn._post_nms_top_n == {"training": 2000, "testing": 1000}
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 512
