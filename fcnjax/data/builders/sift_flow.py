"""SIFT Flow: 2,688 256x256 outdoor images, 33 semantic and 3 geometric classes.

Layout (``manual_dir``; fcn.berkeleyvision.org's ``data/sift-flow``)::

    Images/spatial_envelope_256x256_static_8outdoorcategories/<name>.jpg
    SemanticLabels/spatial_envelope_256x256_static_8outdoorcategories/<name>.mat   # "S"
    GeoLabels/spatial_envelope_256x256_static_8outdoorcategories/<name>.mat        # "S"
    {trainval,test}.txt                                                            # <name>s

As in the reference, semantic 1..33 become classes 0..32 and geometric 1..3 classes 0..2;
0 (and -1 in the geometric labels) become void. ``label`` is semantic, ``geo_label`` geometric.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from fcnjax.data import classes
from fcnjax.data.builders import common
from fcnjax.data.builders.sbd import read_mat

CLASSES = classes.CLASS_SETS["siftflow"]
GEO_CLASSES = ("sky", "horizontal", "vertical")
SUBDIR = "spatial_envelope_256x256_static_8outdoorcategories"


class SiftFlow(common.SegmentationBuilder):
    """SIFT Flow scene parsing: semantic ``label`` (33 classes) and ``geo_label`` (3)."""

    CLASSES = CLASSES
    STORED_VALUES = tuple(range(1, len(CLASSES) + 1))
    HOMEPAGE = "http://people.csail.mit.edu/celiu/LabelTransfer/"
    CITATION = ("Liu, Yuen, Torralba. Nonparametric scene parsing: label transfer via dense "
                "scene alignment. CVPR, 2009.")
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Unpack SiftFlowDataset.zip with the FCN split lists "
                                    "(trainval.txt, test.txt) and pass it as manual_dir.")

    def _info(self) -> tfds.core.DatasetInfo:
        info = super()._info()
        info.metadata["geo_classes"] = list(GEO_CLASSES)
        return info

    def _features(self) -> dict:
        return {**super()._features(),
                "geo_label": tfds.features.Image(shape=(None, None, 1), use_colormap=False)}

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = str(dl_manager.manual_dir)
        for folder in ("Images", "SemanticLabels", "GeoLabels"):
            common.require_dir(os.path.join(root, folder, SUBDIR), f"SIFT Flow's {folder}")
        return {split: self._generate_examples(
                    [(n, root) for n in common.read_list(os.path.join(root, split + ".txt"))],
                    self.load) for split in ("trainval", "test")}

    def load(self, name: str, root: str) -> dict:
        semantic = os.path.join(root, "SemanticLabels", SUBDIR, name + ".mat")
        geometric = os.path.join(root, "GeoLabels", SUBDIR, name + ".mat")
        example = self.load_pair(name, os.path.join(root, "Images", SUBDIR, name + ".jpg"),
                                 semantic, to_classes=shift,
                                 label=read_mat(semantic, "S", field=None))
        geo = shift(np.maximum(read_mat(geometric, "S", field=None), 0))
        example["geo_label"] = common.png_bytes(common.check_label(geo, geometric,
                                                                   len(GEO_CLASSES)))
        return example


def shift(label: np.ndarray) -> np.ndarray:
    """Stored 1..N to classes 0..N-1, 0 to void (the reference's uint8 ``label -= 1``)."""
    return np.where(label == 0, common.VOID, label - 1)
