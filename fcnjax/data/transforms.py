"""Per-example transforms on ``{"image", "label"[, "weight"]}`` dicts: numpy in, numpy out.

Examples may carry more maps of the same height and width: more label maps (keys ending in
``_label``, e.g. SIFT Flow's ``geo_label``: moved like ``label``, padded void) and more
inputs (any other key, e.g. NYUDv2's ``hha`` or ``depth``: moved like ``image``, padded 0).

An optional "weight" is a float32 (H, W) per-pixel loss weight map (U-Net's border weights,
:mod:`fcnjax.data.weight_map`): the geometric transforms move it with the label, and padding
gives it 0, so padded and mirrored pixels weigh nothing.

Random ones take a ``np.random.Generator`` as grain's ``random_map`` passes it, so a pipeline
with a seed yields the same examples on every run (and after a restart).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from fcnjax.data.classes import VOID
from fcnjax.run.errors import ConfigError, DataError

Example = dict[str, np.ndarray]


def is_label(key: str) -> bool:
    """Whether ``key`` holds class ids (``label``, ``geo_label``): padded void, resized nearest."""
    return key == "label" or key.endswith("_label")


def pad_value(key: str, ignore: int = VOID) -> int:
    """What padding fills ``key`` with: ``ignore`` for label maps, 0 for images and weights."""
    return ignore if is_label(key) else 0


def spatial_pad(x: np.ndarray, pad: tuple) -> tuple:
    """``pad`` ((top, bottom), (left, right)) extended by (0, 0) for each axis after H, W."""
    return tuple(pad) + ((0, 0),) * (x.ndim - 2)


def label_table(values: Sequence[int], ignore: int = VOID) -> np.ndarray | None:
    """Lookup table from stored label value to class id: ``values[i]`` becomes class i.

    Stored values not in ``values`` become ``ignore``. Empty ``values`` means the file
    already holds class ids: returns None (no mapping).
    """
    if not values:
        return None
    if len(set(values)) != len(values) or min(values) < 0 or max(values) > 255:
        raise ConfigError(f"label_values must be distinct values in 0..255, got {tuple(values)}")
    table = np.full(256, ignore, np.int32)
    table[np.asarray(values)] = np.arange(len(values))
    return table


def map_labels(example: Example, table: np.ndarray | None) -> Example:
    """Replace the stored label values by class ids (int32) through ``table``."""
    label = example["label"]
    if table is not None:
        if label.dtype != np.uint8:
            raise DataError(f"label_values needs 8-bit labels, got {label.dtype}")
        label = table[label]
    return {**example, "label": label.astype(np.int32)}


def normalize(example: Example, mean: Sequence[float], scale: float, bgr: bool,
              key: str = "image") -> Example:
    """``key`` (the image) float32 = (pixels [reversed to BGR] - mean) * scale.

    The FCN reference: ``bgr=True``, mean (104.00699, 116.66877, 122.67892), scale 1.
    """
    image = example[key].astype(np.float32)
    if bgr:
        image = image[..., ::-1]
    if len(mean) not in (1, image.shape[-1]):
        raise ConfigError(f"mean has {len(mean)} values for a {image.shape[-1]}-channel image")
    image = (image - np.asarray(mean, np.float32)) * np.float32(scale)
    return {**example, key: image}


def pad_to(example: Example, size: Sequence[int], ignore: int = VOID) -> Example:
    """Pad every map at the bottom and right to ``size``: labels with ``ignore``, images and
    the weight with 0.

    Raises ValueError if the example is larger than ``size``.
    """
    h, w = example["label"].shape
    if h > size[0] or w > size[1]:
        raise ConfigError(f"a {h}x{w} example does not fit the {size[0]}x{size[1]} canvas; "
                          "enlarge the canvas (config.input.eval_size / crop_size)")
    if (h, w) == tuple(size):
        return example
    pad = ((0, size[0] - h), (0, size[1] - w))
    return {k: np.pad(x, spatial_pad(x, pad), constant_values=pad_value(k, ignore))
            for k, x in example.items()}


def windowed(example: Example, window: tuple[slice, slice]) -> Example:
    """Every map of ``example`` read through the same ``window`` (H, W indices)."""
    return {k: x[window] for k, x in example.items()}


def mirror_pad(example: Example, pad: int, ignore: int = VOID) -> Example:
    """Extend the image (and other inputs) by ``pad`` mirrored pixels on every side; the
    labels by void and the weight (if any) by 0.

    U-Net's overlap-tile context: a valid-padding net then predicts every real pixel while
    the loss and metrics see only real labels. Needs ``pad`` < the image's height and width.
    """
    if pad == 0:
        return example
    h, w = example["label"].shape
    if pad >= min(h, w):
        raise ConfigError(f"cannot mirror {pad} pixels of a {h}x{w} image "
                          f"(needs pad < {min(h, w)})")
    sides = ((pad, pad), (pad, pad))

    def extend(key: str, x: np.ndarray) -> np.ndarray:
        if is_label(key) or key == "weight":
            return np.pad(x, spatial_pad(x, sides), constant_values=pad_value(key, ignore))
        return np.pad(x, spatial_pad(x, sides), mode="reflect")

    return {k: extend(k, x) for k, x in example.items()}


def random_crop(example: Example, size: Sequence[int], rng: np.random.Generator) -> Example:
    """A random ``size`` window of image, label and weight; smaller examples are first
    padded to it (see ``pad_to``)."""
    h, w = example["label"].shape
    example = pad_to(example, (max(h, size[0]), max(w, size[1])))
    h, w = example["label"].shape
    top = int(rng.integers(h - size[0] + 1))
    left = int(rng.integers(w - size[1] + 1))
    return windowed(example, (slice(top, top + size[0]), slice(left, left + size[1])))


def random_flip(example: Example, rng: np.random.Generator) -> Example:
    """Mirror image, label and weight left-right with probability 1/2."""
    if rng.random() < 0.5:
        return windowed(example, (slice(None), slice(None, None, -1)))
    return example


def random_scale(example: Example, scale_range: Sequence[float],
                 rng: np.random.Generator) -> Example:
    """Resize by a factor drawn uniformly from ``scale_range`` (lo, hi); () leaves it as is.

    The image (uint8) is resized bilinearly, the labels, weight and other inputs (depth,
    HHA) by nearest neighbour, so labels keep class ids and void.
    """
    if not scale_range:
        return example
    h, w = example["label"].shape
    factor = rng.uniform(scale_range[0], scale_range[1])
    size = (max(1, round(h * factor)), max(1, round(w * factor)))
    if size == (h, w):
        return example
    rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(np.int64), w - 1)
    nearest = {k: x[rows[:, None], cols] for k, x in example.items() if k != "image"}
    return {**example, "image": resize_image(example["image"], size), **nearest}


def resize_image(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Bilinear resize of a uint8 (H, W, C) image to ``size`` (H, W)."""
    if image.dtype != np.uint8:
        raise ValueError(f"random_scale resizes uint8 images (before normalize), got {image.dtype}")
    planes = [image] if image.shape[-1] == 3 else [image[..., c] for c in range(image.shape[-1])]
    resized = [np.asarray(Image.fromarray(p).resize((size[1], size[0]), Image.BILINEAR))
               for p in planes]
    return resized[0] if image.shape[-1] == 3 else np.stack(resized, axis=-1)


def photometric_jitter(example: Example, strength: Sequence[float],
                       rng: np.random.Generator) -> Example:
    """Random brightness, contrast and saturation, each a factor in [1 - s, 1 + s].

    ``strength`` = (brightness, contrast, saturation); () leaves the image as is. Saturation
    applies to 3-channel images only. Returns a float32 image clipped to 0..255.
    """
    if not strength:
        return example
    image = example["image"].astype(np.float32)
    brightness, contrast, saturation = (1 + rng.uniform(-s, s) for s in strength)
    # brightness then contrast about the mean, as one multiply-add: (x b - m b) c + m b
    mean = image.mean() * brightness
    image *= brightness * contrast
    image += mean * (1 - contrast)
    if image.shape[-1] == 3:
        gray = image @ np.float32([0.299, 0.587, 0.114])
        image *= saturation
        image += ((1 - saturation) * gray)[..., None]
    return {**example, "image": np.clip(image, 0, 255, out=image)}


def pad_batch(examples: Sequence[Example], ignore: int = VOID) -> list[Example]:
    """Pad every example to the largest height and width among them (label ``ignore``,
    weight 0)."""
    size = tuple(max(e["label"].shape[i] for e in examples) for i in (0, 1))
    return [pad_to(e, size, ignore) for e in examples]
