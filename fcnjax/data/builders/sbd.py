"""SBD, Hariharan et al.'s Semantic Boundaries Dataset: 8,498 train / 2,857 val VOC images.

Layout (``manual_dir``: the unpacked ``benchmark_RELEASE``, or the folder holding it)::

    dataset/img/<name>.jpg
    dataset/cls/<name>.mat        # struct GTcls, field Segmentation: class ids 0..20
    dataset/{train,val}.txt

The paper trains FCN on SBD train and validates on VOC2011's seg11valid
(``voc_segmentation/2011``).
"""

from __future__ import annotations

import os

import numpy as np
import scipy.io
import tensorflow_datasets as tfds

from fcnjax.data.builders import common, voc


class Sbd(common.SegmentationBuilder):
    """SBD class segmentations of VOC2011 images (VOC's 21 classes)."""

    CLASSES = voc.CLASSES
    HOMEPAGE = "http://home.bharathh.info/pubs/codes/SBD/download.html"
    CITATION = ("Hariharan, Arbelaez, Bourdev, Maji, Malik. Semantic contours from inverse "
                "detectors. ICCV, 2011.")
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Unpack benchmark.tgz and pass benchmark_RELEASE as manual_dir."

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual = str(dl_manager.manual_dir)
        root = os.path.join(manual, "dataset")
        if not os.path.isdir(root):
            root = os.path.join(manual, "benchmark_RELEASE", "dataset")
        images = common.require_dir(os.path.join(root, "img"), "SBD's dataset/img/<name>.jpg")
        labels = common.require_dir(os.path.join(root, "cls"), "SBD's dataset/cls/<name>.mat")
        return {split: self._generate_examples(common.paired(
                    common.read_list(os.path.join(root, split + ".txt")),
                    lambda n: os.path.join(images, n + ".jpg"),
                    lambda n: os.path.join(labels, n + ".mat")), self.load)
                for split in ("train", "val")}

    def load(self, name: str, image_path: str, label_path: str) -> dict:
        return self.load_pair(name, image_path, label_path, label=read_mat(label_path, "GTcls"))


def read_mat(path: str, key: str, field: str = "Segmentation") -> np.ndarray:
    """int32 (H, W) ``mat[key].field`` (or ``mat[key]`` if field is None) of a MATLAB file."""
    try:
        value = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)[key]
    except FileNotFoundError:
        raise common.BadExample(f"{path} does not exist; restore it or remove its name from "
                                "the split list") from None
    except (ValueError, TypeError, KeyError, OSError, scipy.io.matlab.MatReadError) as error:
        raise common.BadExample(f"{path} is not a MATLAB file with {key!r} ({error}); copy it "
                                "again from the original archive, or prepare with --skip_bad")
    array = np.asarray(getattr(value, field) if field else value)
    if array.ndim != 2:
        raise common.BadExample(f"{path}: {key} is {array.shape}, expected (H, W) class ids")
    return array.astype(np.int32)
