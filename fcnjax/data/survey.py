"""A bounded survey of a split's labels, and the degenerate training data it reveals.

``survey(source, num_classes, label_values)`` reads the labels (and only the header of each
image) of a spread-out, seeded sample of at most ``max_examples`` examples of a data source
(an image folder, a prepared tfds split, or an ids subset of either), histograms the stored
label values and maps them to classes through ``label_values`` as training would
(:func:`fcnjax.data.transforms.label_table`). A class the sample lacks sends the scan on
through the rest of the split until every class is seen, the split is exhausted or the
time budget is spent.

From a :class:`Survey`: :func:`fractions_line` (one start-up line of class fractions),
:func:`problems` / :func:`check_training_data` (labels that cannot train the model as
configured: one class, mostly void, an absent class, stored values the label mapping
drops). Class weights: :func:`fcnjax.data.classes.median_frequency_weights` of
``Survey.class_pixels``.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import time
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from fcnjax.data import ids, transforms
from fcnjax.data.classes import VOID
from fcnjax.data.image_folder import ImageFolder, read_label
from fcnjax.run.errors import DataError

MAX_FRACTION_VOID = 0.5
"""More void than this (of a split's sampled pixels) is degenerate training data."""


class DegenerateData(DataError):
    """Labels that cannot train the model as configured; the message names the fix."""


@dataclasses.dataclass(frozen=True)
class Survey:
    """What the sampled labels of one split hold.

    Attributes:
      split: the split's name ("" when unknown), for messages.
      examples: examples in the split (or subset).
      sampled: examples read.
      complete: whether every example was read.
      timed_out: whether the time budget stopped the scan before it was done.
      height, width: (min, max) over the examples read.
      channels: channel counts of the stored images read, ascending.
      stored: pixels of each raw stored label value, ascending by value.
      label_values: the mapping applied (``label_values[i]`` -> class i; empty: the values
        are class ids already, 255 void).
      num_classes: the classes the labels should hold.
    """

    split: str
    examples: int
    sampled: int
    complete: bool
    timed_out: bool
    height: tuple[int, int]
    width: tuple[int, int]
    channels: tuple[int, ...]
    stored: dict[int, int]
    label_values: tuple[int, ...]
    num_classes: int

    @property
    def pixels(self) -> int:
        """Label pixels read."""
        return sum(self.stored.values())

    @property
    def class_pixels(self) -> np.ndarray:
        """int64 (num_classes,): pixels of each class."""
        values, counts = self.histogram()
        classes = class_ids(values, self.label_values, self.num_classes)
        labelled = classes != VOID
        return np.bincount(classes[labelled], weights=counts[labelled],
                           minlength=self.num_classes).astype(np.int64)

    @property
    def void_pixels(self) -> int:
        """Pixels that map to void: stored 255 and every value in ``unmapped``."""
        return self.pixels - int(self.class_pixels.sum())

    @property
    def unmapped(self) -> dict[int, int]:
        """Pixels of each stored value other than 255 that maps to no class (the mapping,
        or the class count, contradicts the data)."""
        values, counts = self.histogram()
        classes = class_ids(values, self.label_values, self.num_classes)
        lost = (classes == VOID) & (values != VOID)
        return {int(v): int(c) for v, c in zip(values[lost], counts[lost])}

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """``stored`` as int64 arrays (values, pixels)."""
        return (np.fromiter(self.stored.keys(), np.int64, len(self.stored)),
                np.fromiter(self.stored.values(), np.int64, len(self.stored)))


def class_ids(values: np.ndarray, label_values: Sequence[int], num_classes: int) -> np.ndarray:
    """The class id (int64) each stored label value becomes in training, VOID where none:
    ``label_values[i]`` -> i (no ``label_values``: the value itself), and VOID for any
    value that is not then a class id below ``num_classes``."""
    values = np.asarray(values, np.int64)
    table = transforms.label_table(tuple(label_values))
    if table is not None:
        in_table = (values >= 0) & (values < len(table))
        values = np.where(in_table, table[np.clip(values, 0, len(table) - 1)], VOID)
    return np.where((values >= 0) & (values < num_classes), values, VOID)


def value_counts(label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, pixels) of the distinct values of a label map, ascending."""
    flat = np.asarray(label).ravel()
    if flat.dtype == np.uint8:
        counts = np.bincount(flat, minlength=256)
        values = np.flatnonzero(counts)
        return values, counts[values]
    return np.unique(flat, return_counts=True)


def sample_order(size: int, count: int, seed: int) -> np.ndarray:
    """Every index below ``size``, the order a survey reads them: first ``count`` spread
    over the whole range (one seeded pick in each of ``count`` equal strata, ascending),
    then the rest in a seeded random order."""
    if count >= size:
        return np.arange(size)
    rng = np.random.default_rng(seed)
    bounds = np.linspace(0, size, max(count, 0) + 1).astype(np.int64)
    first = rng.integers(bounds[:-1], bounds[1:]) if count > 0 else np.zeros(0, np.int64)
    rest = np.setdiff1d(np.arange(size), first)
    return np.concatenate([first, rng.permutation(rest)])


def flatten(source: Any) -> tuple[Any, list[int]]:
    """(the underlying source, the indices into it) of a source or nested ids subsets."""
    if isinstance(source, ids.Subset):
        inner, indices = flatten(source.source)
        return inner, [indices[i] for i in source.indices]
    return source, list(range(len(source)))


LabelReader = Callable[[int], tuple[np.ndarray, int]]
"""index -> ((H, W) stored label values, channels of the stored image)."""


def folder_reader(folder: ImageFolder) -> LabelReader:
    """Labels of an image folder; channels from each image file's header."""
    def read(index: int) -> tuple[np.ndarray, int]:
        with Image.open(folder.image_paths[index]) as image:
            channels = len(image.getbands())
        return read_label(folder.label_paths[index]), channels
    return read


def tfds_reader(source: Any) -> LabelReader:
    """Labels of a prepared tfds split (a ``TfdsSource``), every other feature left
    undecoded; channels from the stored image's header."""
    import tensorflow_datasets as tfds  # only tfds sources need it

    features = source.builder.info.features
    skip = {k: tfds.decode.SkipDecoding() for k in features if k != source.label_key}
    examples = source.builder.as_data_source(split=source.split, decoders=skip)

    def read(index: int) -> tuple[np.ndarray, int]:
        example = source.read(examples, index)  # a damaged shard file: one line
        label = np.asarray(example[source.label_key])
        return (label[..., 0] if label.ndim == 3 else label), channels_of(
            example[source.image_key])
    return read


def channels_of(image: Any) -> int:
    """Channels of an image given as encoded bytes (read from the header) or as pixels."""
    if isinstance(image, bytes):
        with Image.open(io.BytesIO(image)) as header:
            return len(header.getbands())
    image = np.asarray(image)
    return image.shape[-1] if image.ndim == 3 else 1


def label_reader(source: Any) -> LabelReader:
    """The reader of an ``ImageFolder`` or ``TfdsSource``; TypeError for anything else."""
    if isinstance(source, ImageFolder):
        return folder_reader(source)
    if hasattr(source, "builder") and hasattr(source, "label_key"):
        return tfds_reader(source)
    raise TypeError(f"cannot survey {source!r}: expected an ImageFolder or a TfdsSource")


def check_mapping(label_values: Sequence[int], num_classes: int) -> None:
    """ValueError when ``label_values`` is malformed or names more classes than there are."""
    transforms.label_table(tuple(label_values))
    if num_classes < 0 or len(label_values) > num_classes:
        raise ValueError(f"label_values {tuple(label_values)} names {len(label_values)} "
                         f"classes but num_classes is {num_classes}")


def survey(source: Any, num_classes: int, label_values: Sequence[int] = (), *,
           max_examples: int = 64, max_seconds: float = 10.0, seed: int = 0,
           split: str | None = None) -> Survey:
    """Survey the labels of ``source`` (see the module docstring).

    Reads the first ``max_examples`` of ``sample_order``, then on while a class has no
    pixel yet, stopping once ``max_seconds`` have passed (after at least one example).
    ``num_classes`` 0: histogram only (nothing to look for). ``split`` names the split in
    messages (default: ``source.split`` where it has one).
    """
    check_mapping(label_values, num_classes)
    if max_examples < 1:
        raise ValueError(f"max_examples must be >= 1, got {max_examples}")
    base, indices = flatten(source)
    if not indices:
        raise ValueError(f"{source!r} has no examples to survey")
    read = label_reader(base)
    deadline = time.monotonic() + max_seconds
    stored: collections.Counter = collections.Counter()
    seen = np.zeros(num_classes, bool)
    heights, widths, channels = [], [], set()
    timed_out = False
    for position, index in enumerate(sample_order(len(indices), max_examples, seed)):
        if position >= max_examples and seen.all():
            break
        if position and time.monotonic() > deadline:
            timed_out = True
            break
        label, depth = read(indices[index])
        values, counts = value_counts(label)
        stored.update(dict(zip(values.tolist(), counts.tolist())))
        classes = class_ids(values, label_values, num_classes)
        seen[classes[classes != VOID]] = True
        heights.append(label.shape[0])
        widths.append(label.shape[1])
        channels.add(depth)
    return Survey(
        split=getattr(base, "split", "") if split is None else split,
        examples=len(indices), sampled=len(heights), complete=len(heights) == len(indices),
        timed_out=timed_out, height=(min(heights), max(heights)),
        width=(min(widths), max(widths)), channels=tuple(sorted(channels)),
        stored=dict(sorted(stored.items())), label_values=tuple(label_values),
        num_classes=num_classes)


def remap(result: Survey, label_values: Sequence[int], num_classes: int) -> Survey:
    """The same survey read through another label mapping (nothing is read again)."""
    check_mapping(label_values, num_classes)
    return dataclasses.replace(result, label_values=tuple(label_values),
                               num_classes=num_classes)


def suggest_label_values(values: Sequence[int]) -> tuple[int, ...]:
    """The ``label_values`` that reads stored ``values`` as classes: every value in order,
    except that 255 stays void when the others are class ids 0, 1, ... already.

    >>> suggest_label_values([0, 255]), suggest_label_values([0, 1, 255])
    ((0, 255), (0, 1))
    """
    values = sorted(int(v) for v in values)
    others = [v for v in values if v != VOID]
    if len(others) >= 2 and others == list(range(len(others))):
        return tuple(others)
    return tuple(values)


def percent(part: float, whole: float) -> str:
    """"12.3%"; "<0.1%" for a part too small to show, never "0.0%" for a non-zero one."""
    share = 100.0 * part / whole if whole else 0.0
    return "<0.1%" if 0 < share < 0.05 else f"{share:.1f}%"


def listing(items: Sequence[Any], limit: int = 8) -> str:
    """"a", "a and b", "a, b and c"; past ``limit`` items "a, b, ... (12 in all)"."""
    items = [str(i) for i in items]
    if len(items) > limit:
        return f"{', '.join(items[:limit])}, ... ({len(items)} in all)"
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def check_names(result: Survey, names: Sequence[str]) -> None:
    """ValueError unless there is one name per class."""
    if len(names) != result.num_classes:
        raise ValueError(f"{len(names)} class names for {result.num_classes} classes")


def count_of(count: int, noun: str) -> str:
    """"1 image", "2 images"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def images_read(result: Survey) -> str:
    """"367 images" when every example was read, else "40 of 367 images"."""
    if result.complete:
        return count_of(result.examples, "image")
    return f"{result.sampled} of {count_of(result.examples, 'image')}"


def fractions_line(result: Survey, names: Sequence[str]) -> str:
    """One start-up line: each class's share of the pixels read, void's, absent classes.

    ``train labels (40 of 367 images): sky 15.2%, building 22.1%, void 3.4%; absent: pole``
    """
    check_names(result, names)
    counts, total = result.class_pixels, result.pixels
    shares = [f"{name} {percent(n, total)}" for name, n in zip(names, counts) if n]
    shares.append(f"void {percent(result.void_pixels, total)}")
    absent = [name for name, n in zip(names, counts) if not n]
    where = f"{result.split} labels" if result.split else "labels"
    line = f"{where} ({images_read(result)}): {', '.join(shares)}"
    return line + (f"; absent: {listing(absent)}" if absent else "")


def read_where(result: Survey) -> str:
    """"the 30 train images" (all read) or "the 40 sampled train images (of 367)"."""
    split = f"{result.split} " if result.split else ""
    if result.complete:
        return f"the {count_of(result.examples, split + 'image')}"
    cut = ", the scan cut short by its time limit" if result.timed_out else ""
    sampled = count_of(result.sampled, f"sampled {split}image")
    return f"the {sampled} (of {result.examples}{cut})"


def unmapped_problem(result: Survey) -> str:
    """The message for stored values that map to no class (``result.unmapped`` non-empty)."""
    lost = result.unmapped
    stored, mapping = list(result.stored), result.label_values
    verb = "becomes" if len(lost) == 1 else "become"
    share = percent(sum(lost.values()), result.pixels)
    if mapping:
        said = (f"config.input.label_values = {mapping} maps only "
                f"{listing(mapping)} to classes")
    else:
        said = (f"with config.input.label_values = () they must be class ids "
                f"0..{result.num_classes - 1} or void {VOID}")
    fix = suggest_label_values(stored)
    classes = f" ({len(fix)} classes, not {result.num_classes})" \
        if len(fix) != result.num_classes else ""
    return (f"{result.split + ' ' if result.split else ''}labels store values {stored} but "
            f"{said}: {listing(list(lost))} {verb} void ({share} of the pixels of "
            f"{read_where(result)}); set config.input.label_values = {fix}{classes}")


def mapping_hint(result: Survey) -> str:
    """The fix to name for labels mostly void or of one class: the ``label_values`` that
    reads every stored value as a class, when that is not the mapping already applied."""
    if set(result.stored) <= {VOID}:
        return f"the label files hold only {VOID} (unlabelled): train on a labelled split"
    fix = suggest_label_values(list(result.stored))
    values, _ = result.histogram()
    same = np.array_equal(class_ids(values, fix, len(fix)),
                          class_ids(values, result.label_values, result.num_classes))
    if same or len(fix) > result.num_classes:
        return "check the label files and config.input.label_values"
    return (f"the labels store values {list(result.stored)}: if each is a class, set "
            f"config.input.label_values = {fix}")


def problems(result: Survey, names: Sequence[str]) -> list[str]:
    """One-line messages, each naming its fix, for what makes ``result`` unfit to train on:
    stored values mapping to no class, mostly void, one class only, absent classes."""
    check_names(result, names)
    found = [unmapped_problem(result)] if result.unmapped else []
    counts, where = result.class_pixels, read_where(result)
    if not counts.sum():
        return found + [f"every pixel of {where} is void ({VOID}): there is nothing to "
                        f"train on; {mapping_hint(result)}"]
    if result.void_pixels > MAX_FRACTION_VOID * result.pixels:
        found.append(f"{percent(result.void_pixels, result.pixels)} of the pixels of {where} "
                     f"are void ({VOID}), more than half; {mapping_hint(result)}")
    present = np.flatnonzero(counts)
    if len(present) == 1 and result.num_classes > 1:
        c = int(present[0])
        return found + [f"every labelled pixel of {where} is {names[c]} (class {c}): the "
                        f"model would learn one class; {mapping_hint(result)}"]
    absent = [f"{names[c]} ({c})" for c in np.flatnonzero(counts == 0)]
    if absent:
        one = len(absent) == 1
        subject = f"class {absent[0]}" if one else f"classes {listing(absent)}"
        verb = ("never appears in" if one else "never appear in") if result.complete \
            else ("is absent from" if one else "are absent from")
        them = "it" if one else "them"
        found.append(f"{subject} {verb} {where}: the model cannot learn what it never sees; "
                     f"add labelled examples of {them} or drop {them} from the classes")
    return found


def check_training_data(result: Survey, names: Sequence[str]) -> None:
    """DegenerateData with the first of ``problems`` (and how many more there are)."""
    found = problems(result, names)
    if found:
        more = f" (and {len(found) - 1} more problem(s))" if len(found) > 1 else ""
        raise DegenerateData(found[0] + more)

