"""Your own data: a folder of images and a folder of masks paired by file name.

Layout (``manual_dir``; directory names are config fields)::

    images/<name>.<png|jpg|jpeg|tif|tiff|bmp>
    masks/<name>.png
    splits/<split>.txt        # optional: one <name> per line; without it, all is "train"

``mask`` says what a mask pixel holds:

- ``"index"``: class ids as grayscale ("L") or palette ("P", VOC-style) values;
- ``"binary"``: 0 (class 0) or 255 (class 1).

Stored value ``void`` (and 255 for index masks) means unlabelled. Each dataset is a config
of its own name, read back as ``tfds.data_source("segmentation_folder/<name>", ...)``.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from fcnjax.data.builders import common
from fcnjax.data.image_folder import IMAGE_EXTENSIONS, natural_key

MASKS = ("index", "binary")
NO_VOID = -1


@dataclasses.dataclass(eq=False, kw_only=True)
class FolderConfig(tfds.core.BuilderConfig):
    """Where the files are and what their masks mean (each field a --folder.* flag)."""

    image_dir: str = "images"     # images, relative to manual_dir
    mask_dir: str = "masks"       # masks (<name>.png), relative to manual_dir
    split_dir: str = "splits"     # <split>.txt lists, relative to manual_dir; absent: all train
    mask: str = "index"           # MASKS
    num_classes: int = 0          # index masks: classes 0..num_classes-1 (binary: 2)
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
            raise ValueError("set num_classes (--folder.num_classes N) or classes "
                             "(--folder.classes a,b,c) for index masks")
        return tuple(str(i) for i in range(self.num_classes))


class SegmentationFolder(common.SegmentationBuilder):
    """A user's segmentation dataset: images and masks paired by file name."""

    BUILDER_CONFIGS = [FolderConfig(name="default")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Pass the folder holding images/, masks/ and optionally "
                                    "splits/<split>.txt as manual_dir.")

    @property
    def classes(self) -> tuple[str, ...]:
        return self.builder_config.class_names()

    @property
    def IMAGE_MODE(self) -> str:  # noqa: N802  (the base class's constant, per config here)
        return self.builder_config.image_mode

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config, root = self.builder_config, str(dl_manager.manual_dir)
        images = common.require_dir(os.path.join(root, config.image_dir), "the images")
        masks = common.require_dir(os.path.join(root, config.mask_dir), "the masks <name>.png")
        found = {os.path.splitext(f)[0]: os.path.join(images, f) for f in os.listdir(images)
                 if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")}
        if not found:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {images}")
        lists = os.path.join(root, config.split_dir)
        if os.path.isdir(lists):
            splits = {f[:-4]: common.read_list(os.path.join(lists, f))
                      for f in sorted(os.listdir(lists)) if f.endswith(".txt")}
        else:
            splits = {"train": sorted(found, key=natural_key)}
        generators = {}
        for split, names in splits.items():
            unknown = [n for n in names if n not in found]
            if unknown:
                raise FileNotFoundError(f"{split}.txt names {len(unknown)} image(s) not in "
                                        f"{images}, first {unknown[0]!r}")
            items = [(n, found[n], os.path.join(masks, n + ".png")) for n in names]
            generators[split] = self._generate_examples(items, self.load)
        return generators

    def load(self, name: str, image_path: str, label_path: str) -> dict:
        if not os.path.isfile(label_path):
            raise common.BadExample(f"image {image_path} has no mask {label_path}; add it or "
                                    "leave the image out of the split list")
        return self.load_pair(name, image_path, label_path, to_classes=self.to_classes)

    def to_classes(self, stored: np.ndarray) -> np.ndarray:
        """Stored mask values to class ids, ``void`` to VOID; others stay (checked later)."""
        config = self.builder_config
        label = stored
        if config.mask == "binary":
            label = np.select([stored == 0, stored == 255], [0, 1], -1)
        if config.void != NO_VOID:
            label = np.where(stored == config.void, common.VOID, label)
        return label
