"""PASCAL VOC 2011 / 2012 segmentation, with the FCN paper's seg11valid split.

Layout (``manual_dir``: VOCdevkit, or the VOC<year> folder itself)::

    VOC<year>/JPEGImages/<name>.jpg
    VOC<year>/SegmentationClass/<name>.png          # palette PNG: class ids, 255 = void
    VOC<year>/ImageSets/Segmentation/{train,val}.txt

Config ``2011`` adds ``seg11valid`` (736 images: VOC2011 val minus SBD train, the paper's
validation set) when ``manual_dir`` also holds SBD's ``benchmark_RELEASE/dataset/train.txt``
or a ready ``seg11valid.txt``. Void (255, the object borders) is kept.
"""

from __future__ import annotations

import logging
import os

import tensorflow_datasets as tfds

from fcnjax.data import classes
from fcnjax.data.builders import common

CLASSES = classes.CLASS_SETS["voc"]
SBD_TRAIN = os.path.join("benchmark_RELEASE", "dataset", "train.txt")


class VocSegmentation(common.SegmentationBuilder):
    """PASCAL VOC segmentation (20 classes + background, void 255 kept)."""

    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="2012", description="VOC2012"),
                       tfds.core.BuilderConfig(name="2011", description="VOC2011 + seg11valid")]
    CLASSES = CLASSES
    HOMEPAGE = "http://host.robots.ox.ac.uk/pascal/VOC/"
    CITATION = ("Everingham et al. The PASCAL Visual Object Classes (VOC) challenge. "
                "IJCV, 2010.")
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Unpack VOCtrainval_<date>.tar and pass VOCdevkit as "
                                    "manual_dir (for seg11valid, unpack SBD's benchmark.tgz "
                                    "next to it).")

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual = str(dl_manager.manual_dir)
        root = year_dir(manual, self.builder_config.name)
        lists = os.path.join(root, "ImageSets", "Segmentation")
        splits = {s: common.read_list(os.path.join(lists, s + ".txt")) for s in ("train", "val")}
        if self.builder_config.name == "2011":
            names = seg11valid(manual, splits["val"])
            if names is not None:
                splits["seg11valid"] = names
        return {split: self._generate_examples(items(root, names), self.load)
                for split, names in splits.items()}

    def load(self, name: str, image_path: str, label_path: str) -> dict:
        return self.load_pair(name, image_path, label_path)


def year_dir(manual_dir: str, year: str) -> str:
    """The VOC<year> folder in or at ``manual_dir``."""
    for root in (manual_dir, os.path.join(manual_dir, f"VOC{year}"),
                 os.path.join(manual_dir, "VOCdevkit", f"VOC{year}")):
        if os.path.isdir(os.path.join(root, "JPEGImages")):
            return root
    raise FileNotFoundError(f"no VOC{year}/JPEGImages under {manual_dir}: pass the VOCdevkit "
                            "folder of the unpacked VOCtrainval tar as manual_dir")


def seg11valid(manual_dir: str, val: list[str]) -> list[str] | None:
    """VOC2011 val minus SBD train (from SBD's list, or a ready seg11valid.txt); None if neither."""
    sbd = os.path.join(manual_dir, SBD_TRAIN)
    if os.path.isfile(sbd):
        exclude = set(common.read_list(sbd))
        return [name for name in val if name not in exclude]
    ready = os.path.join(manual_dir, "seg11valid.txt")
    if os.path.isfile(ready):
        return common.read_list(ready)
    logging.warning("no %s or %s: VOC2011 gets no seg11valid split", sbd, ready)
    return None


def items(root: str, names: list[str]) -> list[tuple[str, str, str]]:
    images = common.require_dir(os.path.join(root, "JPEGImages"), "<name>.jpg")
    labels = common.require_dir(os.path.join(root, "SegmentationClass"), "<name>.png masks")
    return common.paired(names, lambda n: os.path.join(images, n + ".jpg"),
                         lambda n: os.path.join(labels, n + ".png"))
