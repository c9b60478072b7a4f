"""What every fcnjax segmentation builder shares: features, file checks, bad-example handling.

A builder reads the layout a dataset is distributed in (found under ``manual_dir``: nothing
downloads) and writes array_record shards that ``tfds.data_source`` reads without TensorFlow.
Each example is::

    {"image": uint8 (H, W, C),     # the file's bytes when it is already PNG/JPEG in the right mode
     "label": uint8 (H, W, 1),     # class id per pixel, VOID (255) where unlabelled
     "name": str}                  # file stem, so predictions can be written back by name

Images are handed to tfds as bytes or PIL images (never numpy arrays), which keeps TensorFlow
out of both preparing and reading.

Bad files (undecodable, mask of another size, label values outside the classes, colour-coded
masks) raise :class:`BadExample` naming the file and the fix; with ``skip_bad=True`` they are
left out instead, counted in ``builder.skipped`` and reported when the split is written.
"""

from __future__ import annotations

import inspect
import io
import logging
import os
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from fcnjax.data.classes import VOID
from fcnjax.data.image_folder import eight_bit, read_list  # noqa: F401  (common.read_list)
from fcnjax.run.errors import DataError

LABEL_MODES = ("L", "P", "I", "I;16", "1")
# Formats whose bytes are stored as they are (tfds decodes them with PIL or OpenCV).
STORED_FORMATS = ("PNG", "JPEG")


class BadExample(DataError):
    """A file that cannot become an example; the message names the file and the fix."""


def require_dir(path: str, what: str) -> str:
    """``path`` if it is a directory, else FileNotFoundError saying what belongs there."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"missing directory {path}: expected {what}. Point --manual_dir "
                                "(tfds.download.DownloadConfig(manual_dir=...)) at the folder "
                                "the dataset was unpacked to")
    return path


def open_image(path: str, page: int = 0) -> Image.Image:
    """The fully decoded image (``page`` of a multi-page TIFF) at ``path``, or BadExample
    (corrupt, truncated, not an image)."""
    try:
        image = Image.open(path)
        if page:
            image.seek(page)
        image.load()
    except FileNotFoundError:
        raise BadExample(f"{path} does not exist; restore the file or remove it from the "
                         "split list") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadExample(f"{path} cannot be decoded ({error}): the file is corrupt or "
                         "truncated; copy it again from the original archive, or prepare with "
                         "--skip_bad to leave it out") from None
    return image


def image_feature(image: Image.Image, mode: str) -> bytes | Image.Image:
    """What to store for ``image``: its own bytes if already PNG/JPEG in ``mode``, else PIL.

    16-/32-bit images raise BadExample (refused, not rescaled: see image_folder.eight_bit).
    """
    try:
        eight_bit(image, image.filename)
    except ValueError as error:
        raise BadExample(str(error)) from None
    if image.mode == mode and image.format in STORED_FORMATS:
        with open(image.filename, "rb") as f:
            return f.read()
    return image.convert(mode)


def label_array(label: Image.Image, path: str) -> np.ndarray:
    """(H, W) values of a one-value-per-pixel mask; colour-coded masks raise BadExample."""
    if label.mode not in LABEL_MODES:
        raise BadExample(f"mask {path} is {label.mode!r} (colour-coded); expected one class "
                         "index per pixel: save it as a palette ('P') or grayscale ('L') PNG "
                         "whose values are class ids")
    return np.asarray(label).astype(np.int32)


def check_label(label: np.ndarray, path: str, num_classes: int,
                stored: np.ndarray | None = None) -> np.ndarray:
    """uint8 ``label`` if every value is a class id or VOID, else BadExample.

    ``stored``: the mask as read, before mapping to class ids; the error quotes its values.
    """
    bad = ((label < 0) | (label >= num_classes)) & (label != VOID)
    if bad.any():
        values = np.unique((label if stored is None else stored)[bad])
        raise BadExample(f"mask {path} has values {values[:8].tolist()} that are neither one "
                         f"of the {num_classes} classes nor void; fix the mask, or set the "
                         "void value / classes the masks use")
    return label.astype(np.uint8)


def check_size(image: Image.Image, label: np.ndarray, image_path: str, label_path: str):
    """BadExample if the mask is not the image's size."""
    if label.shape != (image.height, image.width):
        raise BadExample(f"image {image_path} is {image.width}x{image.height} but its mask "
                         f"{label_path} is {label.shape[1]}x{label.shape[0]} (WxH); the mask "
                         "must label every pixel of its image")


def paired(names: Iterable[str], image: Callable[[str], str],
           label: Callable[[str], str]) -> list[tuple[str, str, str]]:
    """``(name, image_path, label_path)`` for every name."""
    return [(name, image(name), label(name)) for name in names]


class SegmentationBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the fcnjax builders: subclasses give CLASSES and ``_split_generators``.

    Subclasses yield from ``self._examples(items, load)``, where ``load(*item)`` returns one
    example dict and may raise BadExample.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First fcnjax release."}
    CLASSES: Sequence[str] = ()
    # Mask value of each class in the files as distributed (class i: STORED_VALUES[i]);
    # None: the files already hold class ids. Kept in the dataset's metadata, so a config
    # naming the same raw encoding (config.input.label_values) is recognised as agreeing.
    STORED_VALUES: Sequence[int] | None = None
    IMAGE_MODE = "RGB"
    HOMEPAGE = ""
    CITATION = ""

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        """This builder's file. tfds derives it through importlib.resources, which fails for
        editable installs (``pip install -e``) when run outside the checkout."""
        return epath.Path(inspect.getfile(cls))

    def __init__(self, *, skip_bad: bool = False, **kwargs):
        """``skip_bad``: leave out bad examples (counted in ``self.skipped``) instead of raising.

        Shards are array_record unless ``file_format`` says otherwise (tfrecord needs TensorFlow).
        """
        kwargs.setdefault("file_format", "array_record")
        super().__init__(**kwargs)
        self.skip_bad = skip_bad
        self.skipped: list[tuple[str, str]] = []

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names; class i is stored as label value i."""
        return tuple(self.CLASSES)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def stored_values(self) -> tuple[int, ...]:
        """Mask value of each class in the files as distributed (``STORED_VALUES``)."""
        if self.STORED_VALUES is None:
            return tuple(range(self.num_classes))
        return tuple(self.STORED_VALUES)

    def _features(self) -> dict:
        channels = len(self.IMAGE_MODE) if self.IMAGE_MODE != "L" else 1
        return {"image": tfds.features.Image(shape=(None, None, channels)),
                "label": tfds.features.Image(shape=(None, None, 1), use_colormap=False),
                "name": tfds.features.Text()}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self, description=self.__doc__,
            features=tfds.features.FeaturesDict(self._features()),
            supervised_keys=("image", "label"), homepage=self.HOMEPAGE, citation=self.CITATION,
            disable_shuffling=True,  # examples stay in list / file order (predictions by name)
            metadata=tfds.core.MetadataDict(classes=list(self.classes), void=VOID,
                                            stored_values=list(self.stored_values)))

    def _generate_examples(self, items: Sequence[tuple], load: Callable[..., dict]
                           ) -> Iterator[tuple[str, dict]]:
        skipped = 0
        for item in items:
            try:
                example = load(*item)
            except BadExample as error:
                if not self.skip_bad:
                    raise
                self.skipped.append((str(item[0]), str(error)))
                skipped += 1
                continue
            yield example["name"], example
        if skipped:
            logging.warning("%s: skipped %d bad example(s) of %d; see builder.skipped",
                            self.name, skipped, len(items))

    def load_pair(self, name: str, image_path: str, label_path: str | None,
                  to_classes: Callable[[np.ndarray], np.ndarray] | None = None,
                  label: np.ndarray | None = None, page: int = 0) -> dict:
        """The example of one image and its mask file, or ``label`` array, or neither (void).

        ``to_classes`` maps the stored mask values to class ids (VOID where unlabelled)
        before they are checked against the classes. ``page``: the page of multi-page TIFF
        image and mask files to read.
        """
        image = open_image(image_path, page)
        source = label_path or image_path
        if label is None and label_path is not None:
            label = label_array(open_image(label_path, page), label_path)
        if label is None:
            label = np.full((image.height, image.width), VOID, np.int32)
        elif to_classes is not None:
            label, stored = to_classes(label), label
            check_label(label, source, self.num_classes, stored)
        check_size(image, label, image_path, source)
        label = check_label(label, source, self.num_classes)
        return {"image": image_feature(image, self.IMAGE_MODE), "label": png_bytes(label),
                "name": name}


def png_bytes(label: np.ndarray) -> bytes:
    """A uint8 (H, W) mask encoded as a grayscale PNG."""
    buffer = io.BytesIO()
    Image.fromarray(label.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
