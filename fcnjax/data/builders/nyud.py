"""NYUDv2 in Gupta et al.'s 40-class version, as the FCN paper uses it (795 train / 654 test).

Layout (``manual_dir``; fcn.berkeleyvision.org's ``data/nyud``)::

    data/images/img_<id>.png      # RGB
    data/depth/img_<id>.png       # 16-bit depth
    data/hha/img_<id>.png         # HHA encoding of depth (config "rgbd_hha" only)
    segmentation/img_<id>.mat     # "segmentation": 0 = unlabelled, 1..40 = classes
    {train,val,trainval,test}.txt # <id> per line; whichever are present become splits

Labels are shifted as the reference does: 1..40 become classes 0..39, 0 becomes void.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from fcnjax.data import classes
from fcnjax.data.builders import common
from fcnjax.data.builders.sbd import read_mat

CLASSES = classes.CLASS_SETS["nyud40"]
SPLITS = ("train", "val", "trainval", "test")


class NyudV2(common.SegmentationBuilder):
    """NYUDv2 40-class segmentation with depth (and HHA): color, depth, hha, label, name."""

    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="rgbd_hha", description="with HHA"),
                       tfds.core.BuilderConfig(name="rgbd", description="color and depth")]
    CLASSES = CLASSES
    STORED_VALUES = tuple(range(1, len(CLASSES) + 1))
    HOMEPAGE = "https://cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html"
    CITATION = ("Gupta, Arbelaez, Malik. Perceptual organization and recognition of indoor "
                "scenes from RGB-D images. CVPR, 2013.")
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Unpack the FCN NYUDv2 data (data/images, data/depth, "
                                    "data/hha, segmentation, *.txt) and pass it as manual_dir.")

    @property
    def hha(self) -> bool:
        return self.builder_config.name == "rgbd_hha"

    def _features(self) -> dict:
        features = super()._features()
        # 16-bit PNGs decode with OpenCV only, so depth is stored as a zlib-compressed array.
        features["depth"] = tfds.features.Tensor(shape=(None, None, 1), dtype=np.uint16,
                                                 encoding=tfds.features.Encoding.ZLIB)
        if self.hha:
            features["hha"] = tfds.features.Image(shape=(None, None, 3))
        return features

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = str(dl_manager.manual_dir)
        for folder in ("data/images", "data/depth", "segmentation") + (("data/hha",) * self.hha):
            common.require_dir(os.path.join(root, folder), f"NYUDv2's {folder}/img_<id>.*")
        present = [s for s in SPLITS if os.path.isfile(os.path.join(root, s + ".txt"))]
        if not present:
            raise FileNotFoundError(f"no split list ({', '.join(SPLITS)}.txt) in {root}")
        return {split: self._generate_examples(
                    [(i, root) for i in common.read_list(os.path.join(root, split + ".txt"))],
                    self.load) for split in present}

    def load(self, index: str, root: str) -> dict:
        def path(folder: str, ext: str = "png") -> str:
            return os.path.join(root, folder, f"img_{index}.{ext}")
        label_path = path("segmentation", "mat")
        label = read_mat(label_path, "segmentation", field=None)
        example = self.load_pair(f"img_{index}", path("data/images"), label_path,
                                 to_classes=shift, label=label)
        depth = common.open_image(path("data/depth"))
        common.check_size(depth, label, path("data/depth"), label_path)
        example["depth"] = np.asarray(depth, np.uint16)[..., None]
        if self.hha:
            hha = common.open_image(path("data/hha"))
            common.check_size(hha, label, path("data/hha"), label_path)
            example["hha"] = common.image_feature(hha, "RGB")
        return example


def shift(label: np.ndarray) -> np.ndarray:
    """Stored 1..40 to classes 0..39, 0 (unlabelled) to void: the reference's ``label -= 1``."""
    return np.where(label == 0, common.VOID, label - 1)
