"""PASCAL-Context (Mottaghi et al.) in the 59-class task, with background: 60 classes.

These are the labels of the FCN reference's ``pascalcontext-fcn*`` nets (60 score channels):
VOC2010's ImageSets/Main train (4,998) and val (5,105) images, read as they are distributed.

Layout (``manual_dir``; the reference's ``data/`` folder, holding ``pascal/VOC2010`` and
``pascal-context``, works as well)::

    VOC2010/JPEGImages/<name>.jpg               # or VOCdevkit/VOC2010/, pascal/VOC2010/
    VOC2010/ImageSets/Main/{train,val}.txt
    trainval/<name>.mat                         # or pascal-context/trainval/ ...
    labels.txt                                  # "<id>: <name>", the 459 full-labelling names
    59_labels.txt                               # "<i>: <name>", the 59 task classes in order

The ``.mat`` files hold ``LabelMap``: ids of ``labels.txt`` per pixel. Mapping, as the
reference's ``pascalcontext_layers.py`` does it: names lose their spaces; the i-th name of
``59_labels.txt`` is class i (1..59), found in ``labels.txt`` under its own name except
diningtable, bedcloth and clothes, which are table, bedclothes and cloth there; every other
id (the other 400 names, or 0) is class 0, background. Nothing is void. The id is the one
the line gives (the real file numbers its lines 1..459, so this is the reference's
line position + 1).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import scipy.io
import tensorflow_datasets as tfds

from fcnjax.data import classes
from fcnjax.data.builders import common
from fcnjax.data.builders.sbd import read_mat
from fcnjax.run.errors import DataError

# Model output order (the reference's data/pascal-context/classes-59.txt).
CLASSES = classes.CLASS_SETS["pascal_context"]
# 59_labels.txt names spelt otherwise in labels.txt.
FULL_NAMES = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}
SPLITS = ("train", "val")
VOC_DIRS = ("VOC2010", os.path.join("VOCdevkit", "VOC2010"), os.path.join("pascal", "VOC2010"))
CONTEXT_DIRS = ("", "pascal-context")


def read_names(path: str) -> list[tuple[int, str]]:
    """``(id, name without spaces)`` of each "<id>: <name>" line of ``path``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"missing {path}: PASCAL-Context's label list (trainval.tar.gz "
                                "of the dataset site holds labels.txt and 59_labels.txt)")
    entries = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            index, colon, name = line.partition(":")
            try:
                entries.append((int(index), name.replace(" ", "").strip()))
            except ValueError:
                raise DataError(f"{path} line {number} is {line.strip()!r}; expected "
                                "'<id>: <name>'") from None
            if not colon or not entries[-1][1]:
                raise DataError(f"{path} line {number} is {line.strip()!r}; expected "
                                "'<id>: <name>'")
    return entries


def class_of_id(labels_path: str, task_path: str) -> np.ndarray:
    """Lookup table: full-labelling id -> class (0..59), from labels.txt and 59_labels.txt.

    DataError when 59_labels.txt is not the 59 classes of ``CLASSES`` in order, or names a
    class labels.txt lacks.
    """
    full = read_names(labels_path)
    task = [name for _, name in read_names(task_path)]
    if tuple(task) != CLASSES[1:]:
        differ = [f"{i}: {got!r} (expected {want!r})" for i, (got, want)
                  in enumerate(zip(task, CLASSES[1:]), 1) if got != want]
        raise DataError(f"{task_path} lists {len(task)} classes, expected the 59 of the task "
                        f"in model order ({', '.join(differ[:4]) or 'count differs'}); use the "
                        "59_labels.txt distributed with PASCAL-Context")
    ids: dict[str, int] = {}
    for index, name in full:
        ids.setdefault(name, index)  # the first line of a name, as the reference's .index
    table = np.zeros(max([index for index, _ in full] + [0]) + 1, np.uint8)
    for cls, name in enumerate(task, 1):
        full_name = FULL_NAMES.get(name, name)
        if full_name not in ids:
            raise DataError(f"{labels_path} has no {full_name!r} (class {cls} of "
                            f"{task_path}); use the labels.txt distributed with PASCAL-Context")
        if ids[full_name] < 0:
            raise DataError(f"{labels_path} gives {full_name!r} the id {ids[full_name]}")
        table[ids[full_name]] = cls
    return table


def first_dir(root: str, candidates: Sequence[str], inside: str, what: str) -> str:
    """The first ``root/candidate`` holding ``inside``, else FileNotFoundError naming ``what``."""
    for candidate in candidates:
        path = os.path.join(root, candidate)
        if os.path.exists(os.path.join(path, inside)):
            return path
    tried = ", ".join(os.path.join(root, c, inside) for c in candidates)
    raise FileNotFoundError(f"missing {what}: looked for {tried}. Point --manual_dir "
                            "(tfds.download.DownloadConfig(manual_dir=...)) at the folder "
                            "PASCAL-Context and VOC2010 were unpacked to")


def read_label_map(path: str) -> np.ndarray:
    """int32 (H, W) ``LabelMap`` of a trainval/<name>.mat; BadExample when unreadable.

    sbd.read_mat lets scipy's MatReadError (a truncated file: not a ValueError) through, so
    it is turned into BadExample here.
    """
    try:
        return read_mat(path, "LabelMap", field=None)
    except scipy.io.matlab.MatReadError as error:
        raise common.BadExample(f"{path} is not a MATLAB file with 'LabelMap' ({error}); copy "
                                "it again from the original archive, or prepare with "
                                "--skip_bad") from None


class PascalContext(common.SegmentationBuilder):
    """PASCAL-Context 59 classes + background on VOC2010 images (the FCN reference's task)."""

    CLASSES = CLASSES
    # None: the mapping is many ids to one class (background) and comes from labels.txt.
    STORED_VALUES = None
    HOMEPAGE = "https://cs.stanford.edu/~roozbeh/pascal-context/"
    CITATION = ("Mottaghi, Chen, Liu, Cho, Lee, Fidler, Urtasun, Yuille. The role of context "
                "for object detection and semantic segmentation in the wild. CVPR, 2014.")
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Unpack VOCtrainval_03-May-2010.tar (VOC2010/) and "
                                    "PASCAL-Context's trainval.tar.gz (trainval/, labels.txt, "
                                    "59_labels.txt) into one folder; pass it as manual_dir.")

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual = str(dl_manager.manual_dir)
        voc = first_dir(manual, VOC_DIRS, "JPEGImages", "VOC2010's JPEGImages/<name>.jpg")
        context = first_dir(manual, CONTEXT_DIRS, "labels.txt",
                            "PASCAL-Context's labels.txt, 59_labels.txt and trainval/")
        masks = common.require_dir(os.path.join(context, "trainval"),
                                   "PASCAL-Context's trainval/<name>.mat")
        self.table = class_of_id(os.path.join(context, "labels.txt"),
                                 os.path.join(context, "59_labels.txt"))
        lists = os.path.join(voc, "ImageSets", "Main")
        return {split: self._generate_examples(common.paired(
                    common.read_list(os.path.join(lists, split + ".txt")),
                    lambda n: os.path.join(voc, "JPEGImages", n + ".jpg"),
                    lambda n: os.path.join(masks, n + ".mat")), self.load)
                for split in SPLITS}

    def load(self, name: str, image_path: str, label_path: str) -> dict:
        return self.load_pair(name, image_path, label_path, to_classes=self.to_classes,
                              label=read_label_map(label_path))

    def to_classes(self, label: np.ndarray) -> np.ndarray:
        """Full-labelling ids to classes; ids of no task class (or none at all) to 0."""
        known = (label >= 0) & (label < len(self.table))
        return np.where(known, self.table[np.where(known, label, 0)], 0).astype(np.int32)
