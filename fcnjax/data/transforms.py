"""Per-example transforms on ``{"image", "label"}`` dicts: numpy in, numpy out, no state.

Random ones take a ``np.random.Generator`` as grain's ``random_map`` passes it, so a pipeline
with a seed yields the same examples on every run (and after a restart).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fcnjax.losses import IGNORE_LABEL

Example = dict[str, np.ndarray]


def label_table(values: Sequence[int], ignore: int = IGNORE_LABEL) -> np.ndarray | None:
    """Lookup table from stored label value to class id: ``values[i]`` becomes class i.

    Stored values not in ``values`` become ``ignore``. Empty ``values`` means the file
    already holds class ids: returns None (no mapping).
    """
    if not values:
        return None
    if len(set(values)) != len(values) or min(values) < 0 or max(values) > 255:
        raise ValueError(f"label_values must be distinct values in 0..255, got {tuple(values)}")
    table = np.full(256, ignore, np.int32)
    table[np.asarray(values)] = np.arange(len(values))
    return table


def map_labels(example: Example, table: np.ndarray | None) -> Example:
    """Replace the stored label values by class ids (int32) through ``table``."""
    label = example["label"]
    if table is not None:
        if label.dtype != np.uint8:
            raise ValueError(f"label_values needs 8-bit labels, got {label.dtype}")
        label = table[label]
    return {**example, "label": label.astype(np.int32)}


def normalize(example: Example, mean: Sequence[float], scale: float, bgr: bool) -> Example:
    """image float32 = (pixels [reversed to BGR] - mean) * scale.

    The FCN reference: ``bgr=True``, mean (104.00699, 116.66877, 122.67892), scale 1.
    """
    image = example["image"].astype(np.float32)
    if bgr:
        image = image[..., ::-1]
    if len(mean) not in (1, image.shape[-1]):
        raise ValueError(f"mean has {len(mean)} values for a {image.shape[-1]}-channel image")
    image = (image - np.asarray(mean, np.float32)) * np.float32(scale)
    return {**example, "image": image}


def pad_to(example: Example, size: Sequence[int], ignore: int = IGNORE_LABEL) -> Example:
    """Pad image (with 0) and label (with ``ignore``) at the bottom and right to ``size``.

    Raises ValueError if the example is larger than ``size``.
    """
    h, w = example["label"].shape
    if h > size[0] or w > size[1]:
        raise ValueError(f"a {h}x{w} example does not fit the {size[0]}x{size[1]} canvas; "
                         "enlarge the canvas (config.input.eval_size / crop_size)")
    if (h, w) == tuple(size):
        return example
    pad = ((0, size[0] - h), (0, size[1] - w))
    return {**example,
            "image": np.pad(example["image"], pad + ((0, 0),)),
            "label": np.pad(example["label"], pad, constant_values=ignore)}


def mirror_pad(example: Example, pad: int, ignore: int = IGNORE_LABEL) -> Example:
    """Extend the image by ``pad`` mirrored pixels on every side; the label by void.

    U-Net's overlap-tile context: a valid-padding net then predicts every real pixel while
    the loss and metrics see only real labels. Needs ``pad`` < the image's height and width.
    """
    if pad == 0:
        return example
    h, w = example["label"].shape
    if pad >= min(h, w):
        raise ValueError(f"cannot mirror {pad} pixels of a {h}x{w} image (needs pad < {min(h, w)})")
    return {**example,
            "image": np.pad(example["image"], ((pad, pad), (pad, pad), (0, 0)), mode="reflect"),
            "label": np.pad(example["label"], pad, constant_values=ignore)}


def random_crop(example: Example, size: Sequence[int], rng: np.random.Generator) -> Example:
    """A random ``size`` window; smaller examples are first padded to it (see ``pad_to``)."""
    h, w = example["label"].shape
    example = pad_to(example, (max(h, size[0]), max(w, size[1])))
    h, w = example["label"].shape
    top = int(rng.integers(h - size[0] + 1))
    left = int(rng.integers(w - size[1] + 1))
    window = (slice(top, top + size[0]), slice(left, left + size[1]))
    return {**example, "image": example["image"][window], "label": example["label"][window]}


def random_flip(example: Example, rng: np.random.Generator) -> Example:
    """Mirror image and label left-right with probability 1/2."""
    if rng.random() < 0.5:
        return {**example, "image": example["image"][:, ::-1], "label": example["label"][:, ::-1]}
    return example
