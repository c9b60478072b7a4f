"""A folder dataset: images and masks paired by file name, in one layout of two arrangements.

Both the folder source (:class:`ImageFolder`, ``config.input.source = "folder"``) and the tfds
builder ``segmentation_folder`` read a folder through :func:`find_pairs`, which detects how
it is arranged::

    root/images/<name>.<ext>              root/<split>/images/<name>.<ext>
    root/masks/<name>.<png|tif|tiff>      root/<split>/masks/<name>.<png|tif|tiff>
    root/splits/<split>.txt   (optional)

Left, split lists: ``splits/<split>.txt`` names one image stem per line; without ``splits/``
every image is split "train". Right, one folder per split (the shipped ISBI 2012 sample).
Unless named, the image folder is the first of IMAGE_DIRS and the mask folder the first of
LABEL_DIRS that exists (``image``/``label`` and ``images``/``masks`` both work).

Images: IMAGE_EXTENSIONS, 8-bit grayscale, RGB(A) or palette, TIFF included. 16-bit and
32-bit images (PIL modes I;16, I, F) are refused with an error, not rescaled (see
:func:`eight_bit`). Masks: one stored value per pixel, grayscale or palette ("P": its
indices), PNG or TIFF; what the values mean (class ids, 0/255, 1-based) is the reader's
choice (``config.input.label_values``, ``--folder.mask``).

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

from fcnjax.run.errors import ConfigError, DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
MASK_EXTENSIONS = (".png", ".tif", ".tiff")
IMAGE_DIRS = ("images", "image")
LABEL_DIRS = ("masks", "labels", "mask", "label")
SPLIT_DIR = "splits"
ALL = "train"  # the one split of a split-list folder without split lists
IMAGE_MODES = ("RGB", "L")
LABEL_MODES = ("L", "P", "I", "I;16", "I;16B")
WIDE_MODES = ("I", "F")  # PIL modes (before any ";16") of 16- and 32-bit pixels
LISTS, FOLDERS = "split lists", "split folders"  # the two arrangements


def natural_key(name: str) -> list:
    """Sort key that orders "2.png" before "10.png"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class ImageFolder:
    """Images and labels of one split of a folder dataset, paired by file name.

    ``image_dir`` / ``label_dir``: the folder names; "" finds them (IMAGE_DIRS, LABEL_DIRS).

    Attributes:
      names: file stems in natural order (``"0"``, ``"4"``, ``"12"`` ...), or in the order of
        the split list.
      image_paths, label_paths: the files read by ``self[i]``.
    """

    def __init__(self, root: str, split: str, *, image_dir: str = "",
                 label_dir: str = "", image_mode: str = "RGB"):
        if image_mode not in IMAGE_MODES:
            raise ConfigError(f"image_mode must be one of {IMAGE_MODES}, got {image_mode!r}")
        self.image_mode = image_mode
        pairs = find_pairs(root, split, image_dir=image_dir, label_dir=label_dir)
        missing = [mask for _, _, mask in pairs if not os.path.isfile(mask)]
        if missing:
            raise FileNotFoundError(f"{len(missing)} image(s) of split {split!r} in {root} have "
                                    f"no mask ({', '.join(MASK_EXTENSIONS)}); first missing: "
                                    f"{missing[0]}")
        self.names = [name for name, _, _ in pairs]
        self.image_paths = [image for _, image, _ in pairs]
        self.label_paths = [mask for _, _, mask in pairs]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        """``{"image": uint8 (H, W, C), "label": uint8 or int32 (H, W)}`` of image ``index``."""
        image_path, label_path = self.image_paths[index], self.label_paths[index]
        image = read_image(image_path, self.image_mode)
        label = read_label(label_path)
        if image.shape[:2] != label.shape:
            raise DataError(f"image {image_path} is {image.shape[1]}x{image.shape[0]} but its "
                            f"label {label_path} is {label.shape[1]}x{label.shape[0]} (WxH)")
        return {"image": image, "label": label}

    def __repr__(self) -> str:
        return f"ImageFolder({len(self)} images, first {self.image_paths[0]})"


def read_image(path: str, mode: str) -> np.ndarray:
    """uint8 (H, W, C) pixels of ``path`` converted to ``mode`` ("RGB": C = 3, "L": C = 1).

    ValueError for a 16-/32-bit image (:func:`eight_bit`) or a multi-page file.
    """
    with Image.open(path) as image:
        single_page(image, path)
        pixels = np.asarray(eight_bit(image, path).convert(mode))
    return pixels[..., None] if pixels.ndim == 2 else pixels


def read_label(path: str) -> np.ndarray:
    """(H, W) label values of ``path``; palette PNGs give their indices (as VOC stores classes)."""
    with Image.open(path) as label:
        single_page(label, path)
        if label.mode not in LABEL_MODES:
            raise DataError(f"label {path} has mode {label.mode!r}; expected one value per "
                            f"pixel ({', '.join(LABEL_MODES)}), not colour-coded labels")
        values = np.asarray(label)
    return values if values.dtype == np.uint8 else values.astype(np.int32)


def eight_bit(image: Image.Image, path: str) -> Image.Image:
    """``image`` if its pixels are 8-bit; ValueError for a 16-bit or 32-bit image.

    Such images are refused, not mapped to uint8: no one mapping suits every source (12-bit
    microscopy saved as 16 bits turns black under ``v >> 8``; a per-image min-max changes the
    intensity scale from image to image), and PIL's own conversion clips everything above
    255. The user rescales once, knowing the data, and training and prediction agree.
    """
    if image.mode.split(";")[0] in WIDE_MODES:
        raise DataError(f"image {path} has {image.mode!r} (16/32-bit) pixels; fcnjax reads "
                        "8-bit images: rescale it to uint8 0..255 and save it again, e.g. "
                        "(x * (255 / x.max())).astype('uint8')")
    return image


def single_page(image: Image.Image, path: str) -> Image.Image:
    """``image`` if its file holds one page; ValueError for a multi-page TIFF (a stack)."""
    pages = getattr(image, "n_frames", 1)
    if pages > 1:
        raise DataError(f"{path} holds {pages} pages; the folder source reads one image per "
                        "file: save each page as a file of its own, or prepare the folder "
                        "with `python -m fcnjax.data.prepare segmentation_folder/<name>` "
                        "(one example per page)")
    return image


def find_pairs(root: str, split: str, *, image_dir: str = "", label_dir: str = "",
               split_dir: str = SPLIT_DIR) -> list[tuple[str, str, str]]:
    """``(name, image_path, mask_path)`` of every image of ``split`` in the folder ``root``.

    Either arrangement of the module's layout is detected. Names are image stems, in split
    list order, else natural order. A missing mask gets the path ``<masks>/<name>.png``
    (callers decide: :class:`ImageFolder` refuses the split, the builder reports the image).
    FileNotFoundError for an unknown split, a missing mask folder, no images, or a listed
    name without an image; ValueError for two files of one stem.
    """
    lists = arrangement(root, image_dir) == LISTS
    splits = list_splits(root, image_dir, split_dir)
    if split not in splits:
        unlisted = lists and not os.path.isdir(os.path.join(root, split_dir))
        hint = (f" (without {os.path.join(root, split_dir)}/<split>.txt every image is in "
                f"{ALL!r})" if unlisted else "")
        raise FileNotFoundError(f"{root} has no split {split!r}; its splits: "
                                f"{', '.join(splits)}{hint}")
    base = root if lists else os.path.join(root, split)
    images = find_dir(base, image_dir, IMAGE_DIRS)
    masks = find_dir(base, label_dir, LABEL_DIRS)
    if masks is None:
        wanted = " or ".join(choices(label_dir, LABEL_DIRS))
        raise FileNotFoundError(f"no mask folder {wanted} in {base} next to {images}: add it, "
                                "or name it (label_dir, --folder.mask_dir)")
    found = files_by_stem(images, IMAGE_EXTENSIONS)
    if not found:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {images}")
    list_path = os.path.join(root, split_dir, split + ".txt")
    names = sorted(found, key=natural_key)
    if lists and os.path.isfile(list_path):
        names = read_list(list_path)
        unknown = [name for name in names if name not in found]
        if unknown:
            raise FileNotFoundError(f"{list_path} names {len(unknown)} image(s) not in "
                                    f"{images}, first {unknown[0]!r}")
    stored = files_by_stem(masks, MASK_EXTENSIONS)
    return [(name, found[name], stored.get(name, os.path.join(masks, name + ".png")))
            for name in names]


def list_splits(root: str, image_dir: str = "", split_dir: str = SPLIT_DIR) -> list[str]:
    """Splits of a folder dataset, in natural order: the ``<split>.txt`` lists in
    ``split_dir`` (``[ALL]`` without that folder), or the subfolders holding images."""
    if arrangement(root, image_dir) == FOLDERS:
        return sorted(split_folders(root, image_dir), key=natural_key)
    lists = os.path.join(root, split_dir)
    if not os.path.isdir(lists):
        return [ALL]
    splits = [f[:-4] for f in os.listdir(lists) if f.endswith(".txt") and not f.startswith(".")]
    if not splits:
        raise FileNotFoundError(f"{lists} holds no <split>.txt list: add one per split, or "
                                f"remove the folder to make every image split {ALL!r}")
    return sorted(splits, key=natural_key)


def arrangement(root: str, image_dir: str = "") -> str:
    """LISTS when ``root`` holds the image folder, FOLDERS when its ``<split>/`` subfolders
    do; FileNotFoundError naming what was looked for when neither."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no dataset folder {root}: point data_dir (--manual_dir) at "
                                "the folder holding images/ and masks/")
    if find_dir(root, image_dir, IMAGE_DIRS) is not None:
        return LISTS
    if split_folders(root, image_dir):
        return FOLDERS
    wanted = "{" + ",".join(choices(image_dir, IMAGE_DIRS)) + "}"
    raise FileNotFoundError(f"{root} holds neither {wanted}/ + masks/ (+ splits/<split>.txt) "
                            f"nor <split>/{wanted}/ + <split>/label/ folders: move the files "
                            "into one of these, or name the image folder (image_dir, "
                            "--folder.image_dir)")


def split_folders(root: str, image_dir: str = "") -> list[str]:
    """Subfolders of ``root`` that hold an image folder."""
    return [d for d in os.listdir(root) if not d.startswith(".")
            and os.path.isdir(os.path.join(root, d))
            and find_dir(os.path.join(root, d), image_dir, IMAGE_DIRS) is not None]


def find_dir(parent: str, name: str, candidates: tuple[str, ...]) -> str | None:
    """``parent/name``, or for ``name`` "" the first ``parent/<candidate>``, that is a folder;
    None when there is none."""
    for choice in choices(name, candidates):
        path = os.path.join(parent, choice)
        if os.path.isdir(path):
            return path
    return None


def choices(name: str, candidates: tuple[str, ...]) -> tuple[str, ...]:
    """The folder names looked for: ``name`` when given, else ``candidates``."""
    return (name,) if name else candidates


def files_by_stem(folder: str, extensions: tuple[str, ...]) -> dict[str, str]:
    """``{stem: path}`` of the files in ``folder`` ending in ``extensions`` (any case; hidden
    files skipped); ValueError when two of them share a stem."""
    found: dict[str, str] = {}
    for file in sorted(os.listdir(folder)):
        if file.startswith(".") or not file.lower().endswith(extensions):
            continue
        stem = os.path.splitext(file)[0]
        if stem in found:
            raise DataError(f"{folder} holds two files named {stem!r} "
                            f"({os.path.basename(found[stem])}, {file}): keep one")
        found[stem] = os.path.join(folder, file)
    return found


def read_list(path: str) -> list[str]:
    """Non-empty, stripped lines of a split list file (every builder's lists too).

    FileNotFoundError when missing; ValueError when empty or when a line repeats an earlier
    one (naming both line numbers).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"missing split list {path}")
    first: dict[str, int] = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            name = line.strip()
            if name in first:
                raise DataError(f"split list {path} names {name!r} twice, on lines "
                                f"{first[name]} and {number}: remove one")
            if name:
                first[name] = number
    if not first:
        raise DataError(f"split list {path} is empty: it must name one example per line")
    return list(first)
