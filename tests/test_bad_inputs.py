"""Hostile and broken inputs, run as users run them: ``python -m bags <command>``.

Every case builds its inputs in its own folder, runs one command in a subprocess and checks:
the exit status; on failure, exactly one error line (``bags <command>: error: ...``) that names
the file or key at fault (besides log records and progress bars), no traceback, none of the
command's outputs left behind; never the marker file that an unpickled payload would create.

Add a case: append a ``Case`` to ``CASES`` whose ``build`` writes what the case needs under
``folder`` and returns the command line after ``python -m bags``. The selected cases run side
by side, one process per core, before their checks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image

from bags.cli import main
from bags.data.synthetic import SyntheticSpec, generate
from bags.engine.checkpoints import RESUMED
from tests.helpers import TINY_SPEC, TINY_TRAIN, train_command
from tests.test_download import DATA, _Server

pytestmark = pytest.mark.slow  # every case runs its command in a process

MARKER = "INJECTED"  # what an unpickled payload creates in the case folder
# What stderr holds besides the error: log records and progress bars.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [\w.]+ (DEBUG|INFO|WARNING): ")
PROGRESS = re.compile(r"^[\w ]+: +\d+%\|")


class Payload:
    """Unpickled, it creates ``path``: the stand-in for code run from a shared file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@dataclass(frozen=True)
class Assets:
    """Made once: a tiny dataset, its counts, a trained model, its feature cache, a server."""

    data: Path
    counts: Path
    groups: Path
    model: Path
    cache: Path
    url: str  # serves DATA


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Assets, Path], list]  # (assets, folder) -> the command line
    says: str | tuple[str, ...] = ""  # what the error line must contain: file or key at fault
    status: int = 1  # 2: refused by the argument parser
    outputs: tuple[str, ...] = ("out",)  # what must not exist after a failure (in folder)
    check: Callable[[Path, str], None] | None = None  # after a success: (folder, stderr)


# --- building inputs ------------------------------------------------------------------------


def edited(source: Path, target: Path, change: Callable[[dict], object]) -> Path:
    """A copy of the JSON ``source`` at ``target``, changed by ``change``."""
    document = json.loads(source.read_text())
    change(document)
    target.write_text(json.dumps(document))  # NaN and Infinity as JSON's non-standard literals
    return target


def annotations(a: Assets, folder: Path, change: Callable[[dict], object]) -> Path:
    return edited(a.data / "train.json", folder / "bad.json", change)


def count(change: Callable[[dict], object], *options: str) -> Callable[[Assets, Path], list]:
    def build(a: Assets, folder: Path) -> list:
        return ["count", "--annotations", annotations(a, folder, change), "--out",
                folder / "out", *(options or ("--on-bad", "stop"))]  # fmt: skip

    return build


def set_box(index: int, box: list) -> Callable[[dict], None]:
    return lambda d: d["annotations"][index].update(bbox=box)


def no_categories(d: dict) -> None:
    d.update(categories=[], annotations=[])  # a well-formed file of nothing


def repeat(field: str, index: int = 0) -> Callable[[dict], None]:
    """The record ``field[index + 1]`` takes the id of ``field[index]``."""

    def change(d: dict) -> None:
        d[field][index + 1]["id"] = d[field][index]["id"]

    return change


def png(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` x ``height`` (its pixel data is not needed for that)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
            + chunk(b"IEND", b""))  # fmt: skip


def first_val_image(a: Assets) -> dict:
    return json.loads((a.data / "val.json").read_text())["images"][0]


def infer(damage: Callable[[Path, dict], object], *options: str, json_size=None):
    """``infer`` over a copy of the val images in which ``damage(file, record)`` changed the
    first image; ``json_size`` rewrites that image's width and height in the annotations."""

    def build(a: Assets, folder: Path) -> list:
        shutil.copytree(a.data / "images" / "val", folder / "images" / "val")
        record = first_val_image(a)
        damage(folder / "images" / record["file_name"], record)

        def resize(d: dict) -> None:
            if json_size:
                d["images"][0].update(width=json_size[0], height=json_size[1])

        val = edited(a.data / "val.json", folder / "val.json", resize)
        return ["infer", "--model-file", a.model, "--annotations", val, "--images",
                folder / "images", "--out", folder / "out", *INFER, *options]  # fmt: skip

    return build


def resized(path: Path, record: dict) -> None:
    with Image.open(path) as image:
        image.resize((32, 40)).save(path)


def truncated(path: Path, record: dict) -> None:
    path.write_bytes(path.read_bytes()[:3000])


def garbage(path: Path, record: dict) -> None:
    path.write_bytes(os.urandom(5000))


def bomb(path: Path, record: dict) -> None:
    path.write_bytes(png(20000, 20000))  # 400 megapixels in a few bytes


def large(path: Path, record: dict) -> None:
    path.write_bytes(png(10000, 10000))  # above PIL's warning threshold, below its error


def corrupt_data(path: Path, record: dict) -> None:
    """Header, size and end marker intact; the compressed pixels scrambled."""
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 40
    data[start : start + 200] = bytes(b ^ 0x55 for b in data[start : start + 200])
    path.write_bytes(bytes(data))


def missing(path: Path, record: dict) -> None:
    path.unlink()


def linked_outside(path: Path, record: dict) -> None:
    """The image moved out of the image folder, a link left in its place."""
    moved = path.parents[2] / "elsewhere.png"
    path.rename(moved)
    path.symlink_to(moved)


def one_category(a: Assets, folder: Path) -> list:
    """``infer`` of the trained model on a val file of its first category only."""

    def keep_first(d: dict) -> None:
        first = d["categories"][0]["id"]
        d["categories"] = d["categories"][:1]
        d["annotations"] = [x for x in d["annotations"] if x["category_id"] == first]

    val = edited(a.data / "val.json", folder / "val.json", keep_first)
    return ["infer", "--model-file", a.model, "--annotations", val, "--images",
            a.data / "images", "--out", folder / "out", *INFER]  # fmt: skip


def other_ids(a: Assets, folder: Path) -> list:
    """``infer`` on a val file whose categories have other ids, as many as the model's."""

    def shift(d: dict) -> None:
        for record in d["categories"]:
            record["id"] += 10
        for record in d["annotations"]:
            record["category_id"] += 10
        for record in d["images"]:
            record["neg_category_ids"] = [i + 10 for i in record.get("neg_category_ids", [])]

    val = edited(a.data / "val.json", folder / "val.json", shift)
    return ["infer", "--model-file", a.model, "--annotations", val, "--images",
            a.data / "images", "--out", folder / "out", *INFER]  # fmt: skip


def stem_over_input(a: Assets, folder: Path) -> list:
    (folder / "m.json").write_text('{"AP": 1.0, "APr": 1.0}')
    (folder / "m.md").write_text("kept")
    return ["table", "--metrics", f"a={folder / 'm.json'}", f"b={folder / 'm.md'}", "--caption",
            "", "--out-stem", folder / "m"]  # fmt: skip


def dir_over_input(a: Assets, folder: Path) -> list:
    shutil.copy(a.model, folder / "model.pt")
    return ["cache", "--model-file", folder / "model.pt", "--train", a.data / "train.json",
            "--val", a.data / "val.json", "--images", a.data / "images", "--out-dir", folder,
            "--batch-size", "4", "--on-bad", "stop", "--image-paths", "file_name",
            "--threads", "1"]  # fmt: skip


def linked_folder(a: Assets, folder: Path) -> list:
    """``infer`` over an image folder that is itself a link (as the pipeline links LVIS's)."""
    shutil.copytree(a.data / "images" / "val", folder / "real" / "val")
    (folder / "images").symlink_to(folder / "real")
    return ["infer", "--model-file", a.model, "--annotations", a.data / "val.json", "--images",
            folder / "images", "--out", folder / "out", *INFER]  # fmt: skip


def outside(a: Assets, folder: Path) -> list:
    shutil.copytree(a.data / "images" / "val", folder / "images" / "val")
    val = edited(a.data / "val.json", folder / "val.json",
                 lambda d: d["images"][0].update(file_name="../../secret.png"))  # fmt: skip
    return ["infer", "--model-file", a.model, "--annotations", val, "--images",
            folder / "images", "--out", folder / "out", *INFER]  # fmt: skip


def training(settings: dict | None = None, method: dict | None = None, *extra):
    def build(a: Assets, folder: Path) -> list:
        command = train_command(a.data, folder / "out", folder / "work", settings, method)
        command[command.index("--epoch-log") + 1] = str(folder / "log.csv")
        return [*command, *[e(a, folder) if callable(e) else e for e in extra]]

    return build


TRAINED = ("out", "log.csv")


def checkpoint(content: Callable[[Path], object]):
    """``train`` whose work folder holds a checkpoint with ``content(folder)``."""

    def build(a: Assets, folder: Path) -> list:
        (folder / "work").mkdir()
        item = content(folder)
        path = folder / "work" / "step_000000003.pt"
        if isinstance(item, bytes):
            path.write_bytes(item)
        else:
            torch.save(item, path)
        return training()(a, folder)

    return build


def tampered(change: Callable[[dict], object]):
    """``train`` as the assets' model was trained, resuming the last checkpoint of that run
    changed by ``change``: its tags (settings, data, code) still match."""

    def build(a: Assets, folder: Path) -> list:
        (folder / "work").mkdir()
        made = sorted((a.model.parent / "work").glob("step_*.pt"))[-1]
        state = torch.load(made, weights_only=True)
        change(state)
        torch.save(state, folder / "work" / made.name)
        return training(SHORT)(a, folder)

    return build


def model_file(change: Callable[[dict, Path], object]):
    """``norms`` of a copy of the trained model changed by ``change(content, folder)``."""

    def build(a: Assets, folder: Path) -> list:
        content = torch.load(a.model, weights_only=True)
        change(content, folder)
        torch.save(content, folder / "model.pt")
        return ["norms", "--model-file", folder / "model.pt", "--counts", a.counts, "--out",
                folder / "out"]  # fmt: skip

    return build


HEADS = ("model.pt", "log.csv", "det.json", "norms.csv")


def head(*options: str, baseline=None, cache=None):
    def build(a: Assets, folder: Path) -> list:
        return ["head", "--baseline", baseline(a, folder) if baseline else a.model,
                "--cache-dir", cache(a, folder) if cache else a.cache, "--counts", a.counts,
                "--method", "{}", "--settings", json.dumps(SHORT), "--score-thresh", "0",
                "--detections-per-img", "300", "--threads", "1",
                "--out-model", folder / "model.pt", "--out-log", folder / "log.csv",
                "--out-detections", folder / "det.json", "--out-norms", folder / "norms.csv",
                *options]  # fmt: skip

    return build


def posthoc(method: dict, baseline=None):
    def build(a: Assets, folder: Path) -> list:
        return ["posthoc", "--baseline", baseline(a, folder) if baseline else a.model,
                "--method", json.dumps(method), "--counts", a.counts, "--annotations",
                a.data / "train.json", "--images", a.data / "images", "--on-bad", "stop",
                "--image-paths", "file_name", "--threads", "1",
                "--out", folder / "out", "--out-log", folder / "log.csv"]  # fmt: skip

    return build


def groups_file(change: Callable[[dict], object]):
    """``train`` of BAGS with a copy of the groups file changed by ``change``."""

    def build(a: Assets, folder: Path) -> list:
        edited(a.groups, folder / "groups.json", change)
        bags = {"loss": "bags", "last_layer": "fresh"}
        return training(SHORT, bags, "--groups-file", folder / "groups.json")(a, folder)

    return build


def retrained(a: Assets, folder: Path) -> Path:
    """The trained model with other weights: not the one the cache came from."""
    content = torch.load(a.model, weights_only=True)
    next(iter(content["state_dict"].values())).add_(1.0)
    torch.save(content, folder / "other.pt")
    return folder / "other.pt"


def poisoned_cache(a: Assets, folder: Path) -> Path:
    shutil.copytree(a.cache, folder / "cache")
    torch.save({"kind": Payload(folder / MARKER)}, folder / "cache" / "train.pt")
    return folder / "cache"


def counts_file(text: str):
    def build(a: Assets, folder: Path) -> list:
        (folder / "counts.csv").write_text(text)
        return ["groups", "--counts-file", folder / "counts.csv", "--edges", "10", "100",
                "--beta", "8", "--out", folder / "out"]  # fmt: skip

    return build


def evaluation(gt_change=None, detections=None, *options: str, counts: str | None = None):
    """``evaluate``; ``counts`` replaces the training counts CSV's text."""

    def build(a: Assets, folder: Path) -> list:
        if counts is not None:
            (folder / "counts.csv").write_text(counts)
        gt = edited(a.data / "val.json", folder / "gt.json", gt_change or (lambda d: None))
        image = first_val_image(a)["id"]
        found = detections or [{"image_id": image, "category_id": 1, "bbox": [1, 2, 9, 9],
                                "score": 0.5}]  # fmt: skip
        (folder / "det.json").write_text(json.dumps(found))
        return ["evaluate", "--annotations", gt, "--detections", folder / "det.json",
                "--counts", a.counts if counts is None else folder / "counts.csv",
                "--edges", "10", "100", "--backend", "faster",
                "--out", folder / "out", *(options or ("--detections-per-img", "300"))]  # fmt: skip

    return build


def detection(**change) -> list[dict]:
    return [{"image_id": VAL_ID, "category_id": 1, "bbox": [1, 2, 9, 9], "score": 0.5, **change}]


def gt_image(**change) -> Callable[[dict], None]:
    return lambda d: d["images"][0].update(change)


def gt_annotation(**change) -> Callable[[dict], None]:
    return lambda d: d["annotations"][0].update(change)


def claims(baseline_metrics: dict):
    def build(a: Assets, folder: Path) -> list:
        norms = "category_id,instance_count,norm\n1,2,0.5\n2,10,1.0\n3,30,1.5\n"
        (folder / "norms.csv").write_text(norms)
        (folder / "base.json").write_text(json.dumps(baseline_metrics))
        (folder / "bags.json").write_text(json.dumps({"AP": 20.0, "APr": 10.0}))
        return ["claims", "--baseline-norms", folder / "norms.csv", "--balanced-norms",
                folder / "norms.csv", "--bags-norms", folder / "norms.csv",
                "--baseline-metrics", folder / "base.json", "--bags-metrics",
                folder / "bags.json", "--rows", f"a={folder / 'base.json'}",
                f"b={folder / 'bags.json'}", "--bags-label", "b", "--title", "t",
                "--out", folder / "out"]  # fmt: skip

    return build


def download(*options: str, part: bytes | None = None, path: str = "/data.bin"):
    def build(a: Assets, folder: Path) -> list:
        if part is not None:
            (folder / "out.part").write_bytes(part)
        url = a.url.replace("/data.bin", path)
        return ["download", "--url", url, "--out", folder / "out", *options]

    return build


def place(*options: str):
    def build(a: Assets, folder: Path) -> list:
        (folder / "secret.json").write_text("{}")
        (folder / "shared").mkdir()
        with zipfile.ZipFile(folder / "a.zip", "w") as archive:
            archive.writestr("x.json", "{}")
        resolved = [str(folder / o[1:]) if o.startswith("@") else o for o in options]
        return ["place", *resolved, "--out", folder / "out"]

    return build


def import_coco(weights: Callable[[Path], object], change=None):
    def build(a: Assets, folder: Path) -> list:
        torch.save(weights(folder), folder / "coco.pth")
        train = edited(a.data / "train.json", folder / "coco.json", change or (lambda d: None))
        return ["import-coco", "--weights", folder / "coco.pth", "--annotations", train,
                "--arch", '{"name": "r50_fpn"}', "--out", folder / "out"]  # fmt: skip

    return build


def succeeded_with(text: str, out: str = "out") -> Callable[[Path, str], None]:
    def check(folder: Path, stderr: str) -> None:
        assert text in stderr, stderr
        assert (folder / out).is_file()

    return check


def downloaded(folder: Path, stderr: str) -> None:
    assert (folder / "out").read_bytes() == DATA  # not the stale part's bytes
    assert "starting over" in stderr


def drop_instances(folder: Path, stderr: str) -> None:
    """The repeated annotation is skipped and counted, not trained on twice."""
    assert "1 duplicate id" in stderr, stderr
    assert (folder / "out").read_text().count("\n") == 6  # header and five categories


def poisoned_model(a: Assets, folder: Path) -> Path:
    torch.save({"meta": Payload(folder / MARKER), "state_dict": {}}, folder / "poisoned.pt")
    return folder / "poisoned.pt"


def table_with_nan(a: Assets, folder: Path) -> list:
    (folder / "m.json").write_text('{"AP": NaN, "APr": 1.0}')
    return ["table", "--metrics", f"a={folder / 'm.json'}", "--caption", "", "--out-stem",
            folder / "out"]  # fmt: skip


def not_json(a: Assets, folder: Path) -> list:
    (folder / "bad.json").write_text("{not json")
    return ["count", "--annotations", folder / "bad.json", "--out", folder / "out",
            "--on-bad", "stop"]  # fmt: skip


def beta(value: str) -> Callable[[Assets, Path], list]:
    return lambda a, folder: ["groups", "--counts-file", a.counts, "--edges", "10", "--beta",
                              value, "--out", folder / "out"]  # fmt: skip


def unzip_outside(a: Assets, folder: Path) -> list:
    with zipfile.ZipFile(folder / "a.zip", "w") as archive:
        archive.writestr("val2017/1.jpg", "x")
    return ["unzip", "--archive", folder / "a.zip", "--member-prefix", "../", "--out",
            folder / "out"]  # fmt: skip


def synthesize(spec: str) -> Callable[[Assets, Path], list]:
    return lambda a, folder: ["synthesize", "--spec", spec, "--out", folder / "out"]


def heldout(*options: str) -> Callable[[Assets, Path], list]:
    def build(a: Assets, folder: Path) -> list:
        return ["heldout", "--annotations", a.data / "train.json", "--share", "0.5",
                "--on-bad", "stop", "--out", folder / "out", *options]  # fmt: skip

    return build


def out_a_folder(a: Assets, folder: Path) -> list:
    (folder / "taken").mkdir()
    return ["count", "--annotations", a.data / "train.json", "--out", folder / "taken",
            "--on-bad", "stop"]  # fmt: skip


def file_url(a: Assets, folder: Path) -> list:
    return ["download", "--url", "file:///etc/passwd", "--out", folder / "out"]


# --- the corpus -----------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")


def _first_val_image() -> tuple[str, int]:
    """The tiny dataset's first val image: its file name and id."""
    with tempfile.TemporaryDirectory() as scratch:
        generate(SyntheticSpec(**TINY_SPEC), Path(scratch))
        image = json.loads((Path(scratch) / "val.json").read_text())["images"][0]
    return image["file_name"], image["id"]


VAL_IMAGE, VAL_ID = _first_val_image()
SHORT = {**TINY_TRAIN, "epochs": 1}
INFER = [
    "--on-bad",
    "stop",
    "--image-paths",
    "file_name",
    "--score-thresh",
    "0",
    "--detections-per-img",
    "300",
    "--batch-size",
    "4",
    "--workers",
    "0",
    "--threads",
    "1",
]
BAGS = {"loss": "bags", "last_layer": "fresh"}

# fmt: off
CASES = [
    # Annotations.
    Case("bbox NaN width", count(set_box(0, [1, 2, NAN, 4])), "bad.json: annotation 1: 'bbox'"),
    Case("bbox NaN x", count(set_box(0, [NAN, 2, 3, 4])), "finite numbers"),
    Case("bbox infinite height", count(set_box(1, [1, 2, 3, INF])), "annotation 2: 'bbox'"),
    Case("bbox as text", count(set_box(0, "1,2,3,4")), "annotation 1: 'bbox'"),
    Case("NaN bbox skipped", count(set_box(0, [NAN, 2, 3, 4]), "--on-bad", "skip"),
         status=0, check=succeeded_with("1 non-finite bbox")),
    Case("annotation id twice", count(repeat("annotations")), "annotation 1: id used"),
    Case("annotation id twice, skipped", count(repeat("annotations"), "--on-bad", "skip"),
         status=0, check=drop_instances),
    Case("annotation id not an integer", count(lambda d: d["annotations"][0].update(id=[1])),
         "annotation [1]: 'id'"),
    Case("category id twice", count(repeat("categories")), "bad.json: category 1: id used"),
    Case("category id twice, skip", count(repeat("categories"), "--on-bad", "skip"),
         "category 1: id used"),
    Case("image id twice", count(repeat("images")), "bad.json: image 1: id used"),
    Case("image id twice, skip", count(repeat("images"), "--on-bad", "skip"), "image 1: id used"),
    Case("no categories", count(no_categories), "bad.json: no categories"),
    Case("image width NaN", count(lambda d: d["images"][0].update(width=NAN)), "image 1: 'width'"),
    Case("not JSON", not_json, "bad.json: not valid JSON"),
    Case("bbox value true", count(set_box(0, [True, 2, 3, 4])), "annotation 1: 'bbox'"),
    Case("bbox past a float's range", count(set_box(0, [1, 2, 3, 10**400])),
         "annotation 1: 'bbox' must hold finite numbers"),
    Case("image id true", count(lambda d: d["images"][0].update(id=True)),
         "expected an integer 'id'"),
    Case("image id a list", count(lambda d: d["images"][0].update(id=[1])),
         "expected an integer 'id'"),
    Case("annotation image_id a list", count(lambda d: d["annotations"][0].update(image_id=[1])),
         "annotation 1: unknown image_id [1]"),
    Case("annotation category_id a list",
         count(lambda d: d["annotations"][0].update(category_id=[1])),
         "annotation 1: unknown category_id [1]"),
    Case("annotation category_id true",
         count(lambda d: d["annotations"][0].update(category_id=True)),
         "annotation 1: unknown category_id True"),
    Case("file_name a number", count(lambda d: d["images"][0].update(file_name=5)),
         "bad.json: image 1: 'file_name' must be a non-empty string"),
    Case("category name a list", count(lambda d: d["categories"][0].update(name=["a"])),
         "bad.json: category 1: 'name' must be a string"),
    Case("category frequency 5", count(lambda d: d["categories"][0].update(frequency=5)),
         "bad.json: category 1: 'frequency' must be r, c or f"),
    Case("iscrowd as text", count(lambda d: d["annotations"][0].update(iscrowd="yes")),
         "annotation 1: 'iscrowd' must be 0 or 1"),
    # Images: checked when a dataset is made; damage found only by decoding, when it is met.
    Case("image smaller than its JSON size", infer(resized),
         (VAL_IMAGE, f"image id {VAL_ID}", "32x40 pixels, the annotations say 64x64")),
    Case("wrong-size image skipped", infer(resized, "--on-bad", "skip"),
         status=0, check=succeeded_with("skipped 1 wrong size image(s)")),
    Case("truncated PNG", infer(truncated), (VAL_IMAGE, f"image id {VAL_ID}", "does not end")),
    Case("truncated PNG skipped", infer(truncated, "--on-bad", "skip"),
         status=0, check=succeeded_with("skipped 1 truncated image(s)")),
    Case("garbage PNG", infer(garbage), (VAL_IMAGE, f"image id {VAL_ID}", "not a readable image")),
    Case("garbage PNG skipped", infer(garbage, "--on-bad", "skip"),
         status=0, check=succeeded_with("skipped 1 unreadable image(s)")),
    Case("400-megapixel PNG", infer(bomb, json_size=(20000, 20000)), (VAL_IMAGE, "more than")),
    Case("400-megapixel PNG skipped", infer(bomb, "--on-bad", "skip", json_size=(20000, 20000)),
         status=0, check=succeeded_with("skipped 1 too large image(s)")),
    Case("100-megapixel PNG", infer(large, json_size=(10000, 10000)), "10000x10000 pixels"),
    Case("scrambled pixel data", infer(corrupt_data, "--on-bad", "skip"),
         (VAL_IMAGE, f"cannot read image {VAL_ID}")),
    Case("scrambled pixel data, in a loader process", infer(corrupt_data, "--workers", "1"),
         (VAL_IMAGE, f"cannot read image {VAL_ID}")),
    Case("missing image", infer(missing), f"missing image (image id {VAL_ID}"),
    Case("missing image, skipped", infer(missing, "--on-bad", "skip"),
         status=0, check=succeeded_with("skipped 1 missing image(s)")),
    Case("image path leaving the folder", outside, "outside the image folder"),
    Case("image link leaving the folder", infer(linked_outside),
         (VAL_IMAGE, "outside the image folder by a link")),
    Case("image folder itself a link", linked_folder, status=0, check=succeeded_with("")),
    Case("a model's classes against a val file of one", one_category,
         ("model.pt: a detector of", "the 1 of", "val.json")),
    Case("a model's categories against other ids", other_ids,
         ("model.pt: a detector of", "other categories", "val.json")),
    Case("infer --device bogus", infer(lambda p, r: None, "--device", "bogus"), "--device 'bogus'"),
    Case("infer --threads 10**20", infer(lambda p, r: None, "--threads", str(10**20)),
         "--threads", 2),
    # Training settings and method options.
    Case("batch_size 0", training({**SHORT, "batch_size": 0}), "'batch_size'", outputs=TRAINED),
    Case("epochs as text", training({**SHORT, "epochs": "2"}), "'epochs'", outputs=TRAINED),
    Case("lr NaN", training({**SHORT, "lr": NAN}), "'lr'", outputs=TRAINED),
    Case("seed past 32 bits", training({**SHORT, "seed": 2**40}), "'seed'", outputs=TRAINED),
    Case("momentum 5", training({**SHORT, "momentum": 5}), "'momentum'", outputs=TRAINED),
    Case("unknown setting", training({**SHORT, "speed": 2}), "speed", outputs=TRAINED),
    Case("BAGS without a groups file", training(SHORT, BAGS), "--groups", outputs=TRAINED),
    Case("BAGS beta in loss_options", training(SHORT, {**BAGS, "loss_options": {"beta": 2}}),
         "'loss_options'", outputs=TRAINED),
    Case("groups file: beta banana", groups_file(lambda d: d.update(beta="banana")),
         ("groups.json", "beta"), outputs=TRAINED),
    Case("groups file: beta NaN", groups_file(lambda d: d.update(beta=NAN)),
         ("groups.json", "beta"), outputs=TRAINED),
    Case("groups file: other categories", groups_file(lambda d: d.update(category_ids=[9])),
         ("groups.json", "other categories"), outputs=TRAINED),
    Case("groups file: not groups", groups_file(lambda d: d.pop("groups")),
         ("groups.json", "groups"), outputs=TRAINED),
    Case("groups file: num_classes as text", groups_file(lambda d: d.update(num_classes="5")),
         ("groups.json", "expected an integer, got '5'"), outputs=TRAINED),
    Case("focal gamma as text", training(SHORT, {"loss": "focal", "loss_options": {"gamma": "2"}}),
         "'gamma'", outputs=TRAINED),
    Case("rfs t negative", training(SHORT, {"sampler": "rfs", "sampler_options": {"t": -1}}),
         "'t'", outputs=TRAINED),
    Case("loss_options a list", training(SHORT, {"loss": "focal", "loss_options": [2]}),
         "'loss_options'", outputs=TRAINED),
    Case("loss name a list", training(SHORT, {"loss": ["bags"]}), "'loss'", outputs=TRAINED),
    Case("threads 0", training(SHORT, None, "--threads", "0"), "--threads", 2, TRAINED),
    # Checkpoints, model files, caches, COCO weights: loaded without running what they hold.
    Case("checkpoint with a pickle payload", checkpoint(lambda f: {"step": Payload(f / MARKER)}),
         "step_000000003.pt", outputs=TRAINED),
    Case("checkpoint of garbage", checkpoint(lambda f: b"not a checkpoint"),
         "step_000000003.pt: not a readable checkpoint", outputs=TRAINED),
    Case("checkpoint without state", checkpoint(lambda f: {"step": 3}),
         "not a training checkpoint", outputs=TRAINED),
    Case("checkpoint settings a list",
         checkpoint(lambda f: {key: [] for key in [*RESUMED, "settings"]}),
         "its 'settings' are no mapping", outputs=TRAINED),
    Case("checkpoint step as text", tampered(lambda s: s.update(step="3")),
         ("step_", "its state does not fit this run", "step '3'"), outputs=TRAINED),
    Case("checkpoint partials malformed", tampered(lambda s: s.update(partials=[{"sums": 1}])),
         ("its state does not fit this run", "'partials'"), outputs=TRAINED),
    Case("checkpoint step negative", tampered(lambda s: s.update(step=-5)),
         "step -5 does not follow", outputs=TRAINED),
    Case("checkpoint log emptied", tampered(lambda s: s.update(rows=[])),
         "does not follow 0 logged epoch(s)", outputs=TRAINED),
    Case("checkpoint model of other shapes",
         tampered(lambda s: s["model"].update({k: torch.zeros(1) for k in s["model"]})),
         ("its state does not fit this run", "size mismatch"), outputs=TRAINED),
    Case("start model with a pickle payload", training(SHORT, None, "--start", poisoned_model),
         "poisoned.pt", outputs=TRAINED),
    Case("post-hoc baseline with a pickle payload",
         posthoc({"posthoc": "tau_norm"}, baseline=poisoned_model), "poisoned.pt"),
    Case("post-hoc tau negative", posthoc({"posthoc": "tau_norm", "posthoc_options": {"tau": -1}}),
         "tau"),
    Case("post-hoc rule unknown", posthoc({"posthoc": "magic"}), "magic"),
    Case("post-hoc without a rule", posthoc({}), "post-hoc rule"),
    Case("model with a pickle payload",
         model_file(lambda c, f: c.update(state_dict=Payload(f / MARKER))), "model.pt"),
    Case("model: bags classifier without groups",
         model_file(lambda c, f: c["meta"].update(classifier="bags")), "lacks 'groups'"),
    Case("model: broken groups",
         model_file(lambda c, f: c["meta"].update(classifier="bags", groups="{")), "model.pt"),
    Case("model: num_classes as text",
         model_file(lambda c, f: c["meta"].update(num_classes="5")), "num_classes"),
    Case("model: unknown arch option",
         model_file(lambda c, f: c["meta"]["arch"].update(speed=2)), "model.pt"),
    Case("model: arch channels -1",
         model_file(lambda c, f: c["meta"]["arch"].update(channels=-1)),
         "model.pt: its description makes no detector"),
    Case("model: num_classes 10**13",
         model_file(lambda c, f: c["meta"].update(num_classes=10**13)), "num_classes"),
    Case("model: a weight NaN",
         model_file(lambda c, f: next(iter(c["state_dict"].values())).fill_(NAN)),
         "holds NaN or infinity"),
    Case("model: weights by number",
         model_file(lambda c, f: c.update(state_dict={5: torch.zeros(1)})),
         "model.pt: weights are not tensors by name"),
    Case("model: category_ids text",
         model_file(lambda c, f: c["meta"].update(category_ids="1,2")), "category_ids"),
    Case("cache of another model", head(baseline=retrained), "made from another model",
         outputs=HEADS),
    Case("cache with a pickle payload", head(cache=poisoned_cache), "train.pt", outputs=HEADS),
    Case("head --detections-per-img 0", head("--detections-per-img", "0"),
         "--detections-per-img", 2, HEADS),
    Case("head method with a post-hoc rule", head("--method", '{"posthoc": "tau_norm"}'),
         "post-hoc", outputs=HEADS),
    Case("COCO weights with a pickle payload",
         import_coco(lambda f: {"w": Payload(f / MARKER)}), "coco.pth"),
    Case("COCO annotations without categories",
         import_coco(lambda f: {}, no_categories), "coco.json: no categories"),
    # Counts and groups.
    Case("groups --beta nan", beta("nan"), "--beta", 2),
    Case("groups --beta negative", beta("-1"), "--beta", 2),
    Case("counts: header only", counts_file("category_id,name,instance_count\n"),
         "counts.csv: counts CSV has no categories"),
    Case("counts: category twice", counts_file("category_id,name,instance_count\n1,a,3\n1,b,4\n"),
         "category id 1 appears twice"),
    Case("counts: count as text", counts_file("category_id,name,instance_count\n1,a,x\n"),
         "'instance_count'"),
    Case("counts: empty file", counts_file(""), "counts.csv: not a counts CSV"),
    # Evaluation and claims.
    Case("evaluate --detections-per-img 0", evaluation(None, None, "--detections-per-img", "0"),
         "--detections-per-img", 2),
    Case("ground truth annotation id twice", evaluation(repeat("annotations")),
         "gt.json: annotation 1: id used by an earlier annotation"),
    Case("ground truth annotation of an unknown image", evaluation(gt_annotation(image_id=999)),
         "gt.json: annotation 1: unknown image_id 999"),
    Case("ground truth of an unknown category", evaluation(gt_annotation(category_id=99)),
         "gt.json: annotation 1: unknown category_id 99"),
    Case("ground truth box of negative size", evaluation(gt_annotation(bbox=[1, 2, -3, 4])),
         "gt.json: annotation 1: bbox width and height must be > 0"),
    Case("ground truth neg_category_ids a number", evaluation(gt_image(neg_category_ids=5)),
         f"gt.json: image {VAL_ID}: 'neg_category_ids' must be a list of known category ids"),
    Case("ground truth neg_category_ids unknown", evaluation(gt_image(neg_category_ids=[999])),
         "'neg_category_ids' must be a list of known category ids, got [999]"),
    Case("ground truth not_exhaustive_category_ids null",
         evaluation(gt_image(not_exhaustive_category_ids=None)),
         f"gt.json: image {VAL_ID}: 'not_exhaustive_category_ids' must be a list"),
    Case("ground truth frequency unknown",
         evaluation(lambda d: d["categories"][0].update(frequency="x")),
         "gt.json: category 1: 'frequency' must be r, c or f"),
    Case("ground truth frequency missing",
         evaluation(lambda d: d["categories"][0].pop("frequency")),
         "gt.json: category 1: 'frequency' must be r, c or f, got None"),
    Case("ground truth image id a list", evaluation(gt_image(id=[1])),
         "gt.json: image {"),
    Case("ground truth annotation id 0", evaluation(gt_annotation(id=0)),
         "gt.json: annotation 0: 'id' must be an integer >= 1"),
    Case("ground truth area negative", evaluation(gt_annotation(area=-5)),
         "gt.json: annotation 1: 'area' must be a finite number >= 0"),
    Case("ground truth box outside its image", evaluation(gt_annotation(bbox=[60, 60, 30, 30])),
         "gt.json: annotation 1: bbox [60, 60, 30, 30] lies outside"),
    Case("detection score 2", evaluation(None, detection(score=2)),
         "det.json: entry 0 has score 2, not a number in [0, 1]"),
    Case("detection box of negative width", evaluation(None, detection(bbox=[21, 28, -23, 23])),
         "det.json: entry 0 has bbox [21, 28, -23, 23]"),
    Case("evaluate --detections-per-img 2**63",
         evaluation(None, None, "--detections-per-img", str(2**63)), "--detections-per-img", 2),
    Case("counts of another training set",
         evaluation(counts="category_id,name,instance_count\n999,x,5\n"),
         "counts.csv: no training instance count for category"),
    Case("detection category_id a list", evaluation(None, detection(category_id=[1])),
         "det.json: entry 0 has unknown category_id [1]"),
    Case("detection image_id as text", evaluation(None, detection(image_id=str(VAL_ID))),
         f"det.json: entry 0 has unknown image_id '{VAL_ID}'"),
    Case("detection score true", evaluation(None, detection(score=True)),
         "det.json: entry 0 has score True"),
    Case("detection a list", evaluation(None, [[1, 2, 3]]), "det.json: entry 0 is not an object"),
    Case("detections an object", evaluation(None, {"a": 1}), "det.json: expected a JSON list"),
    Case("ground truth area NaN", evaluation(lambda d: d["annotations"][0].update(area=NAN)),
         "gt.json: annotation 1"),
    Case("detection score NaN", evaluation(None, [{"image_id": VAL_ID, "category_id": 1,
                                                  "bbox": [1, 2, 3, 4], "score": NAN}]),
         "det.json: entry 0"),
    Case("claims: metrics without APr", claims({"AP": 20.0}), "base.json: no value for APr"),
    Case("claims: APr null", claims({"AP": 20.0, "APr": None}), "base.json: no value for APr"),
    Case("claims: metrics a list", claims([1, 2]), "base.json"),
    # Downloads.
    Case("stale part, only the size pinned", download("--size", str(len(DATA)), part=b"x" * 5000),
         status=0, check=downloaded),
    Case("sha256 mismatch", download("--sha256", "0" * 64), "sha256 mismatch"),
    Case("sha256 not hexadecimal", download("--sha256", "banana"), "sha256 must be"),
    Case("sha256 prefix mismatch", download("--sha256-prefix", "00000000"),
         "does not start with 00000000"),
    Case("size mismatch", download("--size", "5"), "size mismatch"),
    Case("size negative", download("--size", "-5"), "--size", 2),
    Case("not found", download(path="/missing.bin"), "HTTP 404"),
    Case("file URL", file_url, "only http and https"),
    # Placing and unpacking.
    Case("place without a source", place("--member", "x.json"), "--archive or --existing-folder"),
    Case("place a member outside the folder",
         place("--member", "../secret.json", "--existing-folder", "@shared"), "../secret.json"),
    Case("place a member not in the zip", place("--member", "y.json", "--archive", "@a.zip"),
         "a.zip: cannot extract y.json"),
    Case("unzip a prefix outside the folder", unzip_outside, "'..'"),
    # Other commands.
    Case("synthesize without tiers", synthesize('{"train_counts": []}'), "'train_counts'"),
    Case("synthesize fewest above most", synthesize('{"train_counts": [[2, 9, 3]]}'),
         "'train_counts' tier [2, 9, 3]"),
    Case("synthesize a billion classes", synthesize('{"train_counts": [[1000000000, 1, 2]]}'),
         "'train_counts' tier [1000000000, 1, 2]"),
    Case("synthesize seed negative", synthesize('{"train_counts": [[2, 1, 3]], "seed": -1}'),
         "'seed'"),
    Case("heldout seed past 32 bits", heldout("--seed", str(2**40)), "--seed", 2),
    Case("table metrics with NaN", table_with_nan, "m.json"),
    Case("--out an existing folder", out_a_folder, "Is a directory: '", outputs=()),
    Case("--out-stem over its input", stem_over_input, "--out-stem", outputs=()),
    Case("--out-dir holding its input", dir_over_input, "--out-dir", outputs=()),
]
# fmt: on


# --- running them ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Assets:
    d = tmp_path_factory.mktemp("assets")
    data = d / "data"
    assert main(["synthesize", "--spec", json.dumps(TINY_SPEC), "--out", str(data)]) == 0
    counts = data / "counts.csv"
    assert main(["count", "--annotations", str(data / "train.json"), "--out", str(counts),
                 "--on-bad", "stop"]) == 0  # fmt: skip
    groups = d / "groups.json"
    assert main(["groups", "--counts-file", str(counts), "--edges", "10", "100", "--beta", "8",
                 "--out", str(groups)]) == 0  # fmt: skip
    assert main(train_command(data, d / "model.pt", d / "work", SHORT)) == 0
    cached = ["cache", "--model-file", str(d / "model.pt"), "--train", str(data / "train.json"),
              "--images", str(data / "images"), "--val", str(data / "val.json"),
              "--out-dir", str(d / "cache"), "--batch-size", "4", "--on-bad", "stop",
              "--image-paths", "file_name", "--threads", "1"]  # fmt: skip
    assert main(cached) == 0
    server = _Server()
    server.files["/data.bin"] = DATA
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield Assets(data, counts, groups, d / "model.pt", d / "cache", server.url("/data.bin"))
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@dataclass(frozen=True)
class Outcome:
    argv: list
    folder: Path
    result: subprocess.CompletedProcess


def run_case(case: Case, a: Assets, folder: Path) -> Outcome:
    argv = case.build(a, folder)
    env = {**os.environ, "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}
    result = subprocess.run(
        [sys.executable, "-m", "bags", *map(str, argv)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return Outcome(argv, folder, result)


@pytest.fixture(scope="module")
def outcomes(request, assets: Assets, tmp_path_factory) -> dict[str, Outcome]:
    """Every selected case, run side by side (each is mostly Python and torch starting up)."""
    chosen = [item.callspec.params["case"] for item in request.session.items
              if item.module is request.module
              and item.originalname == "test_bad_input"]  # fmt: skip
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        futures = {
            case.name: pool.submit(run_case, case, assets, tmp_path_factory.mktemp("case"))
            for case in chosen
        }
        return {name: future.result() for name, future in futures.items()}


def test_the_corpus_is_large_and_its_names_unique():
    assert len(CASES) >= 45
    assert len({case.name for case in CASES}) == len(CASES)


def test_the_payload_runs_when_unpickled_unsafely(tmp_path):
    """So that its marker staying absent means something."""
    torch.save({"x": Payload(tmp_path / MARKER)}, tmp_path / "p.pt")
    torch.load(tmp_path / "p.pt", weights_only=False)
    assert (tmp_path / MARKER).exists()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case: Case, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[case.name]
    argv, folder, result = outcome.argv, outcome.folder, outcome.result
    stderr = result.stderr
    assert "Traceback" not in stderr, stderr
    assert not (folder / MARKER).exists(), "a pickle payload ran"
    assert not list(folder.rglob(".*.tmp")), "a temporary output was left behind"
    assert result.returncode == case.status, stderr
    if case.status == 0:
        assert case.check is not None
        case.check(folder, stderr)
        return
    lines = [
        line
        for line in stderr.splitlines()
        if line.strip() and not LOG_LINE.match(line) and not PROGRESS.match(line)
    ]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"bags {argv[0]}: error: "), lines[0]
    for text in (case.says,) if isinstance(case.says, str) else case.says:
        assert text in lines[0], lines[0]
    assert ".tmp" not in lines[0], "the error names a hidden temporary"
    for output in case.outputs:
        assert not (folder / output).exists(), f"{output} left behind"
