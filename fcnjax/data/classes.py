"""The class tables: every dataset's class names by id, its display colours, the void value
and median-frequency class weights, in one place.

The builders store these names in a prepared dataset's metadata; the start-up line, the
evaluation report, the charts and predict's legends and palettes read them from here (or,
for a dataset prepared with its own names, ``--folder.classes``, from its metadata).
Nothing of fcnjax is imported here.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

VOID = 255
"""Label value of unlabelled pixels: stored so by every builder, padded with by the pipeline,
ignored by the loss and the metrics (``config.loss.ignore_label``'s default)."""

VOID_COLOR = (224, 224, 192)
"""Colour of void pixels, as in PASCAL VOC's label PNGs."""

VOC = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
       "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
       "sheep", "sofa", "train", "tvmonitor")

CLASS_SETS: Mapping[str, tuple[str, ...]] = {
    "voc": VOC,
    "camvid": ("sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence",
               "car", "pedestrian", "bicyclist"),
    "isbi2012": ("membrane", "cell"),
    "nyud40": ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window",
               "bookshelf", "picture", "counter", "blinds", "desk", "shelves", "curtain",
               "dresser", "pillow", "mirror", "floor_mat", "clothes", "ceiling", "books",
               "refrigerator", "television", "paper", "towel", "shower_curtain", "box",
               "whiteboard", "person", "night_stand", "toilet", "sink", "lamp", "bathtub",
               "bag", "otherstructure", "otherfurniture", "otherprop"),
    "siftflow": ("awning", "balcony", "bird", "boat", "bridge", "building", "bus", "car",
                 "cow", "crosswalk", "desert", "door", "fence", "field", "grass", "moon",
                 "mountain", "person", "plant", "pole", "river", "road", "rock", "sand", "sea",
                 "sidewalk", "sign", "sky", "staircase", "streetlight", "sun", "tree",
                 "window"),
    # model output order: the reference's data/pascal-context/classes-59.txt, background 0
    "pascal_context": VOC + (
        "bag", "bed", "bench", "book", "building", "cabinet", "ceiling", "clothes", "computer",
        "cup", "door", "fence", "floor", "flower", "food", "grass", "ground", "keyboard",
        "light", "mountain", "mouse", "curtain", "platform", "sign", "plate", "road", "rock",
        "shelves", "sidewalk", "sky", "snow", "bedcloth", "track", "tree", "truck", "wall",
        "water", "window", "wood"),
}
"""Class names of each dataset by class id (``config.eval.classes``; the builders' CLASSES)."""

CLASS_SET_OF_DATASET = {"voc_segmentation": "voc", "sbd": "voc", "camvid": "camvid",
                        "isbi2012": "isbi2012", "nyud_v2": "nyud40", "sift_flow": "siftflow",
                        "pascal_context": "pascal_context"}
"""The class set of each prepared dataset fcnjax builds."""

CAMVID_COLORS = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128),
                 (60, 40, 222), (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128),
                 (64, 64, 0), (0, 128, 192))
"""SegNet's display colours of CamVid's 11 classes; other class sets use VOC's colour map."""


def palette(num_classes: int) -> np.ndarray:
    """uint8 (num_classes, 3) colours: the PASCAL VOC colour map (0 black, 1 dark red, ...).

    Class c spreads its bits over the channels: bit 3k of c sets bit 7-k of red,
    bit 3k+1 of green, bit 3k+2 of blue.
    """
    colors = np.zeros((num_classes, 3), np.uint8)
    for c in range(num_classes):
        code = c
        for k in range(8):
            for channel in range(3):
                colors[c, channel] |= ((code >> channel) & 1) << (7 - k)
            code >>= 3
    return colors


def class_set(names: Sequence[str]) -> str:
    """The key of CLASS_SETS whose names begin with ``names``, or "" for names of none."""
    names = tuple(names)
    return next((key for key, known in CLASS_SETS.items()
                 if names and known[:len(names)] == names), "")


def class_colors(classes: str | Sequence[str], num_classes: int) -> np.ndarray:
    """uint8 (num_classes, 3) colours of a class set (its key, or its names): SegNet's for
    "camvid", else VOC's."""
    if not isinstance(classes, str):
        classes = class_set(classes)
    if classes == "camvid" and num_classes <= len(CAMVID_COLORS):
        return np.array(CAMVID_COLORS[:num_classes], np.uint8)
    return palette(num_classes)


def class_names(classes: str | Sequence[str], num_classes: int) -> list[str]:
    """Names of ``num_classes`` classes: of the set CLASS_SETS names, or the given names (a
    prepared dataset's own); "class <i>" where there is none."""
    names = CLASS_SETS.get(classes, ()) if isinstance(classes, str) else tuple(classes)
    return [names[i] if i < len(names) else f"class {i}" for i in range(num_classes)]


def median_frequency_weights(counts) -> np.ndarray:
    """Median-frequency class balancing (Eigen & Fergus 2015): median(f) / f_c per class.

    counts: pixels of each class, (C,). f_c = counts_c / sum(counts); the median is over the
    classes present. Absent classes get weight 0. Returns float32 (C,).

    >>> median_frequency_weights([100, 100, 200]).tolist()   # f = (1/4, 1/4, 1/2), median 1/4
    [1.0, 1.0, 0.5]
    """
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 1 or (counts < 0).any() or counts.sum() <= 0:
        raise ValueError(f"need non-negative class counts, not all zero; got {counts}")
    present = counts > 0
    freq = counts / counts.sum()
    median = np.median(freq[present])
    return np.where(present, median / np.where(present, freq, 1.0), 0.0).astype(np.float32)
