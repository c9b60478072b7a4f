"""What a dataset's labels hold, read before training on it.

    python -m fcnjax.data.inspect fcnjax/data/sample/isbi2012 --label_values '(0,255)'
    python -m fcnjax.data.inspect camvid --tfds_data_dir ~/tensorflow_datasets

The argument is a raw image folder (``<root>/<split>/image``, ``<root>/<split>/label``:
every split is read) or the name of a prepared tfds dataset. For each split it prints the
examples, image sizes and channels, each class's share of the label pixels and the
median-frequency weights they imply, void's share, the stored label values and those that
map to no class, and what would make the split unfit to train on
(:mod:`fcnjax.data.survey`). Large splits are sampled (``--max_examples``) and say so.

A raw folder's labels hold stored values: ``--label_values '(0,255)'`` maps stored value
``label_values[i]`` to class i, as ``config.input.label_values`` does; without it the stored
values found are read as the classes, and the line to set is printed. A prepared dataset's
labels are class ids already; its class names come with it.

It also writes a contact sheet (``--output``, default ``./inspect_<name>.png``): a few images of
the first split, each beside its label in the dataset's colours, and a legend.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from fcnjax.data import classes, image_folder, survey, transforms
from fcnjax.data.classes import class_colors, class_names
from fcnjax.run import errors, visualize

PROG = "fcnjax.data.inspect"
GAP = 6            # pixels around and between the sheet's panels
CAPTION = 14       # height of the caption above each row of the sheet
LEGEND_LINE = 14   # height of one line of the legend
LEGEND_ENTRY = 120  # width of one legend entry (swatch and name)
SWATCH = 10        # side of a legend swatch


@dataclasses.dataclass(frozen=True)
class Dataset:
    """What inspect reads.

    Attributes:
      name: the dataset's short name (the sheet's file name, the class-colour set).
      description: "raw folder <root>" or "tfds dataset <full name> in <data_dir>".
      sources: the data source of each split, in order.
      label_values: the label mapping; None: read the stored values found as the classes.
      classes: class names the dataset carries (None: none).
    """

    name: str
    description: str
    sources: dict[str, Any]
    label_values: tuple[int, ...] | None
    classes: tuple[str, ...] | None


RENAMED = {"--data_dir": "--tfds_data_dir", "--out": "--output"}
"""Old flag spellings, accepted with a deprecation line for one release."""

def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="a raw image folder, or a prepared tfds dataset name")
    parser.add_argument("--label_values", default=None, help="stored label value of each "
                        "class, written as config.input.label_values is, e.g. '(0,255)' "
                        "(default: the values found)")
    parser.add_argument("--image_dir", default=None, help="raw folder: the image folder's "
                        "name (default: image_folder's own choice)")
    parser.add_argument("--label_dir", default=None, help="raw folder: the label folder's "
                        "name (default: image_folder's own choice)")
    parser.add_argument("--image_mode", default="RGB", help="raw folder: RGB or L")
    parser.add_argument("--tfds_data_dir", default=None, help="tfds: where datasets are "
                        "prepared (config.input.tfds_data_dir)")
    parser.add_argument("--image_key", default="image", help="tfds: the image feature")
    parser.add_argument("--label_key", default="label", help="tfds: the label feature")
    parser.add_argument("--classes", default=None, help="class set of "
                        "fcnjax.data.classes.CLASS_SETS naming and colouring the classes "
                        "(default: the dataset's name)")
    parser.add_argument("--max_examples", type=int, default=300,
                        help="examples sampled per split (more are read to find a class "
                        "the sample lacks)")
    parser.add_argument("--max_seconds", type=float, default=30.0,
                        help="time budget of each split's survey")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--output", default=None, help="contact sheet PNG "
                        "(default ./inspect_<name>.png)")
    parser.add_argument("--sheet_rows", type=int, default=4, help="images on the sheet")
    parser.add_argument("--tile", type=int, default=160, help="panel height on the sheet")
    argv = errors.renamed_flags(list(argv), RENAMED, PROG)
    args = parser.parse_args(argv)
    if min(args.max_examples, args.sheet_rows, args.tile) < 1 or args.max_seconds <= 0:
        parser.error("--max_examples, --sheet_rows and --tile must be >= 1, --max_seconds > 0")
    return args


def parse_label_values(text: str | None) -> tuple[int, ...] | None:
    """"(0,255)" -> (0, 255), as ``--config.input.label_values`` is written; "()" or "" ->
    () (class ids already); None -> None (not given). The old bare "0,255" is read with a
    deprecation line."""
    if text is None:
        return None
    stripped = text.strip()
    if stripped and not stripped.startswith("("):
        print(f"{PROG}: --label_values {text} is deprecated and will be removed in the next "
              f"release; write --label_values '({stripped})', as "
              "--config.input.label_values is written", file=sys.stderr)
        stripped = f"({stripped})"
    parts = [p.strip() for p in stripped.strip("()").split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise errors.ConfigError(f"bad --label_values {text!r}: write the stored value of "
                                 "each class as a tuple, e.g. --label_values '(0,255)'")
    values = tuple(int(p) for p in parts)
    transforms.label_table(values)  # distinct, 0..255
    return values


def open_folder(root: str, args: argparse.Namespace) -> Dataset:
    """A raw image folder: every split ``image_folder.list_splits`` finds."""
    image_dir = {"image_dir": args.image_dir} if args.image_dir else {}
    label_dir = {"label_dir": args.label_dir} if args.label_dir else {}
    splits = image_folder.list_splits(root, **image_dir)
    sources = {s: image_folder.ImageFolder(root, s, image_mode=args.image_mode, **image_dir,
                                           **label_dir) for s in splits}
    name = os.path.basename(os.path.normpath(os.path.abspath(root)))
    return Dataset(name, f"raw folder {root}", sources, parse_label_values(args.label_values),
                   None)


def open_tfds(name: str, args: argparse.Namespace) -> Dataset:
    """A prepared tfds dataset: every split, the classes its metadata names."""
    import tensorflow_datasets as tfds

    from fcnjax.data import builders  # noqa: F401  (registers fcnjax's builders)
    from fcnjax.data.pipeline import TfdsSource

    try:
        builder = tfds.builder(name, data_dir=args.tfds_data_dir or None)
    except ValueError as error:  # unknown name or config (tfds.core.DatasetNotFoundError)
        raise FileNotFoundError(f"no dataset folder {name} and no tfds dataset {name!r} "
                                f"({str(error).splitlines()[0]})") from None
    # Unprepared, a builder has no splits: TfdsSource.prepared then says how to prepare it.
    splits = list(builder.info.splits) if builder.is_prepared() else ["train"]
    sources = {s: TfdsSource.prepared(name, s, args.tfds_data_dir, image_key=args.image_key,
                                      label_key=args.label_key) for s in splits}
    metadata = builder.info.metadata or {}
    classes = tuple(metadata["classes"]) if "classes" in metadata else None
    label_values = parse_label_values(args.label_values)
    if classes is not None and label_values is not None:
        raise errors.ConfigError(f"{builder.info.full_name} stores class ids (its classes "
                                 f"are {survey.listing(classes)}): drop --label_values")
    return Dataset(name.split("/")[0], f"tfds dataset {builder.info.full_name} in "
                   f"{builder.data_dir}", sources,
                   () if classes is not None else label_values, classes)


def open_dataset(args: argparse.Namespace) -> Dataset:
    """A folder (or a path: starting with / or .) opens as a raw folder, anything else as
    a tfds dataset name."""
    target = os.path.expanduser(args.dataset)
    if os.path.exists(target) and not os.path.isdir(target):
        raise FileNotFoundError(f"{target} is a file, not a dataset folder")
    if os.path.isdir(target) or target.startswith(("/", ".")):
        return open_folder(target, args)
    return open_tfds(args.dataset, args)


def survey_all(dataset: Dataset, args: argparse.Namespace
               ) -> tuple[dict[str, survey.Survey], tuple[int, ...], tuple[str, ...], bool]:
    """(the survey of each split, the label mapping, the class names, whether the mapping
    was inferred from the stored values)."""
    mapping, inferred = dataset.label_values, dataset.label_values is None
    count = len(dataset.classes) if dataset.classes is not None else len(mapping or ())
    results = {split: survey.survey(source, count, mapping or (), split=split,
                                    max_examples=args.max_examples,
                                    max_seconds=args.max_seconds, seed=args.seed)
               for split, source in dataset.sources.items()}
    if inferred:
        found = sorted(set().union(*(r.stored for r in results.values())))
        mapping = survey.suggest_label_values(found)
        count = len(mapping)
        results = {s: survey.remap(r, mapping, count) for s, r in results.items()}
    names = dataset.classes or tuple(class_names(args.classes or dataset.name,
                                                           count))
    return results, tuple(mapping), names, inferred


def size_text(result: survey.Survey) -> str:
    """"128 x 128" or "360..720 x 480..960" (height x width)."""
    def span(low, high):
        return f"{low}" if low == high else f"{low}..{high}"
    return f"{span(*result.height)} x {span(*result.width)}"


def read_text(result: survey.Survey, max_examples: int) -> str:
    """How much of the split was read: all of it, or a sample (and what more)."""
    if result.complete:
        return f"{survey.count_of(result.examples, 'image')}, all read"
    extra = result.sampled - min(max_examples, result.examples)
    text = (f"{survey.count_of(result.examples, 'image')}, {result.sampled} read "
            "(a sample spread over the split")
    text += f", {extra} of them read looking for absent classes" if extra > 0 else ""
    text += ", cut short by --max_seconds" if result.timed_out else ""
    return text + ")"


def weights_text(result: survey.Survey, names: Sequence[str]) -> str:
    """The median-frequency weight of each class present (absent ones weigh 0), or why
    there are none."""
    if not result.class_pixels.sum():
        return "none (no labelled pixels)"
    weights = classes.median_frequency_weights(result.class_pixels)
    text = ", ".join(f"{n} {w:.2f}" for n, w in zip(names, weights) if w)
    absent = int(np.sum(weights == 0))
    return text + (f"; the {absent} absent class(es) 0" if absent else "")


def values_text(values: dict[int, int], total: int, limit: int = 16) -> str:
    """"0 (27.9%), 255 (72.1%)"; "none" when empty; past ``limit`` values, how many more."""
    if not values:
        return "none"
    shown = [f"{v} ({survey.percent(n, total)})" for v, n in list(values.items())[:limit]]
    more = f", ... ({len(values)} values)" if len(values) > limit else ""
    return ", ".join(shown) + more


def split_lines(result: survey.Survey, names: Sequence[str], max_examples: int) -> list[str]:
    """What inspect prints about one split."""
    lines = [f"{result.split}: {read_text(result, max_examples)}",
             f"  size (H x W): {size_text(result)}; image channels: "
             f"{', '.join(map(str, result.channels))}",
             f"  {survey.fractions_line(result, names)}",
             f"  median-frequency weights: {weights_text(result, names)}",
             f"  stored values: {values_text(result.stored, result.pixels)}",
             f"  values that map to no class: {values_text(result.unmapped, result.pixels)}"]
    return lines + [f"  problem: {p}" for p in survey.problems(result, names)]


def mapping_lines(results: dict[str, survey.Survey], mapping: tuple[int, ...],
                  names: Sequence[str], inferred: bool) -> list[str]:
    """The label mapping applied, and for an inferred one where it came from."""
    classes = ", ".join(f"{i} {n}" for i, n in enumerate(names))
    if not inferred:
        read = f"label_values = {mapping}" if mapping else "labels are class ids (255 void)"
        return [f"{read}; classes: {classes}"]
    found = sorted(set().union(*(r.stored for r in results.values())))
    return [f"no --label_values: the labels store values {found}, read as classes "
            f"{classes}; to train on them set --config.input.label_values="
            f"'{mapping}' (here --label_values '{mapping}')"]


def as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) of a stored (H, W, C) image: grey repeated, extra channels dropped,
    wider pixel types stretched to 0..255."""
    image = np.asarray(image)
    image = image[..., None] if image.ndim == 2 else image
    if image.dtype != np.uint8:  # e.g. 16-bit: stretch its range to 0..255
        image = image.astype(np.float64)
        span = max(float(image.max() - image.min()), 1e-12)
        image = ((image - image.min()) / span * 255).round().astype(np.uint8)
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]


def scaled(panel: np.ndarray, height: int, nearest: bool) -> np.ndarray:
    """``panel`` resized to ``height`` rows, aspect kept (nearest neighbour for labels and
    for enlarging)."""
    h, w = panel.shape[:2]
    width = max(1, round(w * height / h))
    smooth = not nearest and height < h
    resample = Image.Resampling.BILINEAR if smooth else Image.Resampling.NEAREST
    return np.asarray(Image.fromarray(panel).resize((width, height), resample))


def legend_lines(num_entries: int, width: int) -> int:
    """Lines the legend of ``num_entries`` entries takes on a sheet ``width`` wide."""
    per_line = max(1, (width - 2 * GAP) // LEGEND_ENTRY)
    return -(-num_entries // per_line)


def contact_sheet(rows: Sequence[tuple[str, np.ndarray, np.ndarray]], names: Sequence[str],
                  colors: np.ndarray, tile: int) -> np.ndarray:
    """uint8 (H, W, 3): each (caption, image, class-id label) as a captioned row of image
    beside coloured label, each panel ``tile`` high, then a legend (classes, void).

    Width 2 GAP + the widest row (2 panels + GAP); height GAP + rows (CAPTION + tile + GAP)
    + legend lines (LEGEND_LINE each) + GAP.
    """
    panels = [(caption, scaled(as_rgb(image), tile, nearest=False),
               scaled(visualize.colorize(label, len(names), colors), tile, nearest=True))
              for caption, image, label in rows]
    width = 2 * GAP + max(a.shape[1] + GAP + b.shape[1] for _, a, b in panels)
    entries = [(n, tuple(c)) for n, c in zip(names, colors.tolist())]
    void = visualize.colorize(np.array([[survey.VOID]]), len(names), colors)[0, 0]
    entries.append(("void", tuple(void.tolist())))
    lines = legend_lines(len(entries), width)
    height = GAP + len(panels) * (CAPTION + tile + GAP) + lines * LEGEND_LINE + GAP
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    top = GAP
    for caption, image, label in panels:
        draw.text((GAP, top), caption, fill="black")
        sheet.paste(Image.fromarray(image), (GAP, top + CAPTION))
        sheet.paste(Image.fromarray(label), (2 * GAP + image.shape[1], top + CAPTION))
        top += CAPTION + tile + GAP
    per_line = max(1, (width - 2 * GAP) // LEGEND_ENTRY)
    for k, (name, color) in enumerate(entries):
        x, y = GAP + (k % per_line) * LEGEND_ENTRY, top + (k // per_line) * LEGEND_LINE
        draw.rectangle((x, y + 1, x + SWATCH - 1, y + SWATCH), fill=color, outline="black")
        draw.text((x + SWATCH + 4, y), name, fill="black")
    return np.asarray(sheet)


def sheet_rows(split: str, source: Any, mapping: tuple[int, ...], count: int, seed: int
               ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(caption, image, class ids) of ``count`` examples spread over ``source``."""
    picks = np.sort(survey.sample_order(len(source), count, seed)[:count])
    names = getattr(source, "names", None)
    table = transforms.label_table(mapping)
    rows = []
    for i in picks.tolist():
        example = transforms.map_labels(source[i], table)
        caption = f"{split} {names[i] if names is not None else i}"
        rows.append((caption, example["image"], example["label"]))
    return rows


def run(args: argparse.Namespace) -> int:
    """Survey every split, print the report, write the contact sheet."""
    dataset = open_dataset(args)
    print(f"{PROG}: {dataset.description}; splits {', '.join(dataset.sources)}")
    results, mapping, names, inferred = survey_all(dataset, args)
    print("\n".join(mapping_lines(results, mapping, names, inferred)))
    for result in results.values():
        print("\n".join(split_lines(result, names, args.max_examples)))
    first, source = next(iter(dataset.sources.items()))
    colors = class_colors(args.classes or dataset.name, len(names))
    rows = sheet_rows(first, source, mapping, args.sheet_rows, args.seed)
    out = args.output or f"inspect_{dataset.name}.png"
    Image.fromarray(contact_sheet(rows, names, colors, args.tile)).save(out)
    print(f"contact sheet: {out} ({len(rows)} {first} images beside their labels)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command. A user mistake (``errors.user_errors``) exits with one line,
    ``fcnjax.data.inspect: error: ...``, status 1 (``--debug``: its traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = errors.debugging(argv)
    with errors.one_line_errors(PROG, debug):
        return run(parse(argv))


if __name__ == "__main__":
    sys.exit(main())
