"""A random-access data source over a folder of images and label PNGs paired by file name.

Layout (the shipped ISBI 2012 sample uses it)::

    root/<split>/image/<name>.<png|jpg|jpeg|tif|tiff|bmp|webp>
    root/<split>/label/<name>.png      # one class id per pixel ("L" or palette "P" PNG)

``ImageFolder(root, split)[i]`` is ``{"image": uint8 (H, W, C), "label": uint8 (H, W)}``, the
raw values as stored; mapping label values to classes and normalising the image are
transforms (:mod:`fcnjax.data.transforms`). It has ``__len__`` and ``__getitem__``, so
``grain.MapDataset.source`` takes it as is.
"""

from __future__ import annotations

import os
import re

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
IMAGE_MODES = ("RGB", "L")
LABEL_MODES = ("L", "P", "I", "I;16")


def natural_key(name: str) -> list:
    """Sort key that orders "2.png" before "10.png"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class ImageFolder:
    """Images and labels of one split of a folder dataset, paired by file name.

    Attributes:
      names: file stems in natural order (``"0"``, ``"4"``, ``"12"`` ...).
      image_paths, label_paths: the files read by ``self[i]``.
    """

    def __init__(self, root: str, split: str, *, image_dir: str = "image",
                 label_dir: str = "label", image_mode: str = "RGB"):
        if image_mode not in IMAGE_MODES:
            raise ValueError(f"image_mode must be one of {IMAGE_MODES}, got {image_mode!r}")
        self.image_mode = image_mode
        images = os.path.join(root, split, image_dir)
        labels = os.path.join(root, split, label_dir)
        if not os.path.isdir(images):
            raise FileNotFoundError(f"no image folder {images} (expected "
                                    f"<root>/<split>/{image_dir}/<name>.png)")
        files = sorted((f for f in os.listdir(images)
                        if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")),
                       key=natural_key)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {images}")
        self.names = [os.path.splitext(f)[0] for f in files]
        self.image_paths = [os.path.join(images, f) for f in files]
        self.label_paths = [os.path.join(labels, n + ".png") for n in self.names]
        missing = [p for p in self.label_paths if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(f"{len(missing)} image(s) in {images} have no label; "
                                    f"first missing: {missing[0]}")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        """``{"image": uint8 (H, W, C), "label": uint8 or int32 (H, W)}`` of image ``index``."""
        image_path, label_path = self.image_paths[index], self.label_paths[index]
        image = read_image(image_path, self.image_mode)
        label = read_label(label_path)
        if image.shape[:2] != label.shape:
            raise ValueError(f"image {image_path} is {image.shape[1]}x{image.shape[0]} but its "
                             f"label {label_path} is {label.shape[1]}x{label.shape[0]} (WxH)")
        return {"image": image, "label": label}

    def __repr__(self) -> str:
        return f"ImageFolder({len(self)} images, first {self.image_paths[0]})"


def read_image(path: str, mode: str) -> np.ndarray:
    """uint8 (H, W, C) pixels of ``path`` converted to ``mode`` ("RGB": C = 3, "L": C = 1)."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert(mode))
    return pixels[..., None] if pixels.ndim == 2 else pixels


def read_label(path: str) -> np.ndarray:
    """(H, W) label values of ``path``; palette PNGs give their indices (as VOC stores classes)."""
    with Image.open(path) as label:
        if label.mode not in LABEL_MODES:
            raise ValueError(f"label {path} has mode {label.mode!r}; expected one value per "
                             f"pixel ({', '.join(LABEL_MODES)}), not colour-coded labels")
        values = np.asarray(label)
    return values if values.dtype == np.uint8 else values.astype(np.int32)


def list_splits(root: str, image_dir: str = "image") -> list[str]:
    """Splits of a folder dataset: the subfolders of ``root`` that hold ``image_dir``, in
    natural order; FileNotFoundError when there are none."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no dataset folder {root}")
    splits = [d for d in os.listdir(root)
              if os.path.isdir(os.path.join(root, d, image_dir)) and not d.startswith(".")]
    if not splits:
        raise FileNotFoundError(f"{root} holds no <split>/{image_dir}/ folder")
    return sorted(splits, key=natural_key)
