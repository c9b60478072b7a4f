"""Your own data: a folder of images and a folder of masks paired by file name.

The layout (``manual_dir``) is the folder source's, :mod:`fcnjax.data.image_folder`::

    images/<name>.<ext>  masks/<name>.<png|tif|tiff>  splits/<split>.txt (optional: all "train")
    or  <split>/image(s)/<name>.<ext>  <split>/label(s)|mask(s)/<name>.<png|tif|tiff>

Folder names are found unless given (``--folder.image_dir``, ``--folder.mask_dir``). A
multi-page TIFF image (a stack such as ISBI's ``train-volume.tif``, its mask the stack of the
same stem) gives one example per page, named ``<stem>_<page>`` (pages from 0); split lists
name the stack's stem. 16-/32-bit images are refused (``image_folder.eight_bit``).

``mask`` says what a mask pixel holds:

- ``"index"``: class ids as grayscale ("L") or palette ("P", VOC-style) values;
- ``"binary"``: 0 (class 0) or 255 (class 1);
- ``"one_based"``: 1..num_classes for classes 0..num_classes-1, 0 unlabelled.

Stored value ``void`` (and 255 for index masks) means unlabelled. Each dataset is a config
of its own name, read back as ``tfds.data_source("segmentation_folder/<name>", ...)``.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from fcnjax.data import image_folder
from fcnjax.data.builders import common

MASKS = ("index", "binary", "one_based")
TIFF = (".tif", ".tiff")
NO_VOID = -1


@dataclasses.dataclass(eq=False, kw_only=True)
class FolderConfig(tfds.core.BuilderConfig):
    """Where the files are and what their masks mean (each field a --folder.* flag)."""

    image_dir: str = ""           # image folder name; "": images/ or image/ (found)
    mask_dir: str = ""            # mask folder name; "": masks/, labels/, mask/ or label/
    split_dir: str = "splits"     # <split>.txt lists, relative to manual_dir; absent: all train
    mask: str = "index"           # MASKS
    num_classes: int = 0          # index / one_based masks: how many classes (binary: 2)
    classes: str = ""             # optional comma-separated class names (sets num_classes)
    void: int = NO_VOID           # stored mask value meaning unlabelled; -1: none but 255
    image_mode: str = "RGB"       # "RGB" or "L"

    @classmethod
    def defaults(cls) -> dict:
        """The folder fields and their defaults (the CLI's --folder.* flags)."""
        inherited = {f.name for f in dataclasses.fields(tfds.core.BuilderConfig)}
        return {f.name: f.default for f in dataclasses.fields(cls) if f.name not in inherited}

    def class_names(self) -> tuple[str, ...]:
        if self.mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}, got {self.mask!r}")
        if self.classes:
            return tuple(c.strip() for c in self.classes.split(","))
        if self.mask == "binary":
            return ("background", "foreground")
        if self.num_classes <= 0:
            raise ValueError(f"set num_classes (--folder.num_classes N) or classes "
                             f"(--folder.classes a,b,c) for {self.mask} masks")
        return tuple(str(i) for i in range(self.num_classes))


class SegmentationFolder(common.SegmentationBuilder):
    """A user's segmentation dataset: images and masks paired by file name."""

    BUILDER_CONFIGS = [FolderConfig(name="default")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Pass the folder holding images/, masks/ and optionally "
                                    "splits/<split>.txt (or <split>/image/ and "
                                    "<split>/label/ per split) as manual_dir.")

    @property
    def classes(self) -> tuple[str, ...]:
        return self.builder_config.class_names()

    @property
    def IMAGE_MODE(self) -> str:  # noqa: N802  (the base class's constant, per config here)
        return self.builder_config.image_mode

    @property
    def stored_values(self) -> tuple[int, ...]:
        """Mask value of each class in the files (0/255, 1..N, or the class ids)."""
        if self.builder_config.mask == "binary":
            return (0, 255)
        first = 1 if self.builder_config.mask == "one_based" else 0
        return tuple(range(first, first + self.num_classes))

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config, root = self.builder_config, str(dl_manager.manual_dir)
        splits = image_folder.list_splits(root, config.image_dir, config.split_dir)
        pairs = {split: image_folder.find_pairs(root, split, image_dir=config.image_dir,
                                                label_dir=config.mask_dir,
                                                split_dir=config.split_dir)
                 for split in splits}
        return {split: self._generate_examples(page_items(found), self.load)
                for split, found in pairs.items()}

    def load(self, name: str, image_path: str, label_path: str, page: int) -> dict:
        if not os.path.isfile(label_path):
            raise common.BadExample(f"image {image_path} has no mask {label_path}; add it or "
                                    "leave the image out of the split list")
        return self.load_pair(name, image_path, label_path, to_classes=self.to_classes,
                              page=page)

    def to_classes(self, stored: np.ndarray) -> np.ndarray:
        """Stored mask values to class ids, ``void`` to VOID; others stay (checked later)."""
        config = self.builder_config
        label = stored
        if config.mask == "binary":
            label = np.select([stored == 0, stored == 255], [0, 1], -1)
        elif config.mask == "one_based":
            label = np.select([stored == 0, stored <= common.VOID],
                              [common.VOID, stored - 1], -1)
        if config.void != NO_VOID:
            label = np.where(stored == config.void, common.VOID, label)
        return label


def page_items(pairs: list[tuple[str, str, str]]) -> list[tuple[str, str, str, int]]:
    """``(name, image_path, mask_path, page)`` of every example: one per file, or one per page
    of a multi-page TIFF image, named ``<name>_<page>``, whose mask is the same page of its
    mask file; ValueError when the two files' page counts differ."""
    items = []
    for name, image_path, mask_path in pairs:
        pages = page_count(image_path)
        if pages == 1:
            items.append((name, image_path, mask_path, 0))
            continue
        masks = page_count(mask_path) if os.path.isfile(mask_path) else pages
        if masks != pages:
            raise ValueError(f"image stack {image_path} has {pages} pages but its mask "
                             f"{mask_path} has {masks}: they must match page for page")
        items.extend((f"{name}_{page}", image_path, mask_path, page) for page in range(pages))
    return items


def page_count(path: str) -> int:
    """Pages of a TIFF file; 1 for other files and for unreadable ones (loading the example
    reports those, or skips them with --skip_bad)."""
    if not path.lower().endswith(TIFF):
        return 1
    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1)
    except (OSError, SyntaxError, ValueError):
        return 1
