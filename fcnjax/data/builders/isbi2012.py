"""ISBI 2012 EM segmentation (the U-Net paper's data): 30 labelled and 30 unlabelled images.

Layout (zhixuhao/unet's ``data/membrane``, given as ``manual_dir``)::

    train/image/<N>.png  train/label/<N>.png  test/<N>.png     # N = 0..29, 512x512, "L"

Masks store 0 (membrane) and 255 (cell): classes 0 and 1. The test labels were never
released: test examples carry an all-void label.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from fcnjax.data import classes
from fcnjax.data.builders import common
from fcnjax.data.image_folder import natural_key

CELL = 255


class Isbi2012(common.SegmentationBuilder):
    """ISBI 2012 serial-section EM, membrane (0) vs cell (1); test split unlabelled (void)."""

    name = "isbi2012"
    CLASSES = classes.CLASS_SETS["isbi2012"]
    STORED_VALUES = (0, CELL)
    IMAGE_MODE = "L"
    HOMEPAGE = "https://github.com/zhixuhao/unet"
    CITATION = ("Arganda-Carreras et al. Crowdsourcing the creation of image segmentation "
                "algorithms for connectomics. Front. Neuroanat., 2015.")
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Copy zhixuhao/unet's data/membrane folder (train/image, "
                                    "train/label, test) and pass it as manual_dir.")

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = str(dl_manager.manual_dir)
        images = common.require_dir(os.path.join(root, "train", "image"), "train/image/<N>.png")
        labels = common.require_dir(os.path.join(root, "train", "label"), "train/label/<N>.png")
        test = common.require_dir(os.path.join(root, "test"), "test/<N>.png")
        train = common.paired(stems(images), lambda n: os.path.join(images, n + ".png"),
                              lambda n: os.path.join(labels, n + ".png"))
        test = [(n, os.path.join(test, n + ".png"), None) for n in stems(test)]
        return {"train": self._generate_examples(train, self.load),
                "test": self._generate_examples(test, self.load)}

    def load(self, name: str, image_path: str, label_path: str | None) -> dict:
        return self.load_pair(name, image_path, label_path, to_classes=binary)


def binary(label: np.ndarray) -> np.ndarray:
    """0 -> 0 (membrane), 255 -> 1 (cell), void stays void elsewhere (-1: reported as bad)."""
    return np.select([label == 0, label == CELL], [0, 1], -1)


def stems(folder: str) -> list[str]:
    """Stems of the plain PNGs in ``folder`` in natural order (skips ``*_predict.png``)."""
    names = [f[:-4] for f in os.listdir(folder) if f.endswith(".png") and "_" not in f]
    if not names:
        raise ValueError(f"no <N>.png images in {folder}")
    return sorted(names, key=natural_key)
