"""Pictures: class colours and names, prediction grids, overlays with a legend, learning
curves, per-class IoU bars and confusion heatmaps.

Every picture comes back as a uint8 (H, W, 3) array; callers write it as a PNG (or to
TensorBoard). Charts are drawn by matplotlib on its Agg canvas (no display), imported only
inside the functions that draw, so importing this module stays light.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from fcnjax.data.classes import VOID, VOID_COLOR, class_names, palette


def colorize(label: np.ndarray, num_classes: int,
             colors: np.ndarray | None = None) -> np.ndarray:
    """int (H, W) class ids -> uint8 (H, W, 3); void and out-of-range ids get VOID_COLOR.

    colors: uint8 (num_classes, 3), default the VOC colour map (``palette``).
    """
    label = np.asarray(label)
    colors = palette(num_classes) if colors is None else np.asarray(colors, np.uint8)
    colors = np.concatenate([colors, np.array([VOID_COLOR], np.uint8)])
    index = np.where((label >= 0) & (label < num_classes) & (label != VOID),
                     label, num_classes)
    return colors[index]


def to_uint8(image: np.ndarray, bgr: bool = False) -> np.ndarray:
    """A normalised float (H, W, C) image stretched to uint8 (H, W, 3) RGB for display.

    C = 1 (or 2) shows the first channel as grey; C >= 3 shows the first three as colour.
    """
    image = np.asarray(image, np.float32)
    if image.shape[-1] < 3:
        image = np.repeat(image[..., :1], 3, axis=-1)
    else:
        image = image[..., :3][..., ::-1] if bgr else image[..., :3]
    low, high = float(image.min()), float(image.max())
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return (scaled * 255).round().astype(np.uint8)


CHUNK_PIXELS = 1 << 22
"""Pixels per slice of rows that ``overlay`` and ``colors_present`` work on at a time, so a
10000 x 10000 picture needs a few of its own uint8 sizes, not float copies of itself."""


def row_slices(shape: Sequence[int]) -> list[slice]:
    """Consecutive slices of the rows of an (H, W, ...) array, about CHUNK_PIXELS each."""
    rows = max(1, CHUNK_PIXELS // max(1, shape[1]))
    return [slice(y, y + rows) for y in range(0, shape[0], rows)]


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8 (H, W, 3) blend of an RGB image and a colour mask of one size: ``alpha`` mask."""
    image, mask = np.asarray(image), np.asarray(mask)
    out = np.empty(np.broadcast_shapes(image.shape, mask.shape), np.uint8)
    for rows in row_slices(out.shape):
        blend = ((1 - alpha) * image[rows].astype(np.float32)
                 + alpha * mask[rows].astype(np.float32))
        out[rows] = blend.round().clip(0, 255)
    return out


# --- matplotlib plumbing ---------------------------------------------------------------

DPI = 100
"""Pixels per inch of every drawn picture."""

MIN_LEGEND_WIDTH = 260
"""Narrowest legend strip in pixels: an overlay of a narrower image is padded with white."""


def _figure(width: float, height: float, layout: str | None = None) -> Any:
    """A matplotlib Figure, ``width`` x ``height`` inches, on an Agg canvas (no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def _render(figure: Any) -> np.ndarray:
    """The uint8 (H, W, 3) pixels of a Figure, drawn now."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def _stack(*pictures: np.ndarray) -> np.ndarray:
    """uint8 pictures one above the other, left-aligned; narrower ones padded with white."""
    width = max(p.shape[1] for p in pictures)
    return np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)),
                                  constant_values=255) for p in pictures])


def _patches(names: Sequence[str], colors: Sequence[Sequence[int]]) -> list[Any]:
    """Legend handles: one outlined colour swatch per (name, uint8 RGB colour)."""
    from matplotlib.patches import Patch

    return [Patch(facecolor=np.asarray(c, np.float64) / 255, edgecolor="0.35", linewidth=0.6,
                  label=name) for name, c in zip(names, colors)]


# --- legends ---------------------------------------------------------------------------

def classes_present(labels: Iterable[np.ndarray], num_classes: int) -> tuple[list[int], bool]:
    """The class ids (sorted) that occur in any of the int ``labels`` arrays, and whether
    any void pixel (255 or another id outside 0..num_classes-1) does."""
    seen = np.unique(np.concatenate([np.unique(np.asarray(label)) for label in labels]))
    ids = [int(c) for c in seen if 0 <= c < num_classes and c != VOID]
    return ids, len(ids) < len(seen)


def colors_present(mask: np.ndarray, colors: np.ndarray) -> list[int]:
    """Ids of the classes whose colour (a row of uint8 (K, 3) ``colors``) occurs in the
    uint8 (H, W, 3) colour mask."""
    def code(rgb: np.ndarray) -> np.ndarray:
        rgb = np.asarray(rgb, np.int64)
        return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]

    mask = np.asarray(mask)
    found = np.unique(np.concatenate([np.unique(code(mask[rows]))
                                      for rows in row_slices(mask.shape)]))
    return [int(i) for i in np.flatnonzero(np.isin(code(colors), found))]


def legend_entries(ids: Sequence[int], void: bool, names: Sequence[str],
                   colors: np.ndarray) -> tuple[list[str], list[tuple[int, int, int]]]:
    """Names and colours of the classes ``ids``, then "void" in VOID_COLOR if ``void``."""
    entry_names = [names[i] for i in ids] + (["void"] if void else [])
    entry_colors = [tuple(int(v) for v in colors[i]) for i in ids]
    return entry_names, entry_colors + ([VOID_COLOR] if void else [])


def legend_strip(names: Sequence[str], colors: Sequence[Sequence[int]], width: int,
                 fontsize: float = 10.0) -> np.ndarray:
    """uint8 (h, ~width, 3) white strip of colour swatches and names, in as many columns
    as fit in ``width`` pixels (at least one); h is what the rows need."""
    if not names:
        raise ValueError("a legend strip needs at least one name")
    figure = _figure(width / DPI, 1.0)
    renderer = figure.canvas.get_renderer()
    handles = _patches(names, colors)
    columns = len(handles)
    while True:
        legend = figure.legend(handles=handles, loc="center", ncol=columns, frameon=False,
                               fontsize=fontsize, handlelength=1.4, columnspacing=1.4,
                               borderaxespad=0.2)
        box = legend.get_window_extent(renderer)
        if box.width <= width - 4 or columns == 1:
            break
        legend.remove()
        columns = max(1, min(columns - 1, int(columns * (width - 4) / box.width)))
    figure.set_size_inches(width / DPI, (box.height + 8) / DPI)
    return _render(figure)


def overlay_with_legend(image: np.ndarray, mask: np.ndarray, names: Sequence[str],
                        colors: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``overlay(image, mask, alpha)`` with a legend strip below naming the classes whose
    colour occurs in ``mask`` (and void). The blend is the picture's top-left (H, W);
    an image narrower than MIN_LEGEND_WIDTH is padded on the right with white.

    names, colors: class names and uint8 (K, 3) colours by class id.
    """
    colors = np.asarray(colors, np.uint8)
    ids = colors_present(mask, colors)
    void = bool(np.all(np.asarray(mask) == VOID_COLOR, axis=-1).any())
    if not ids and not void:
        raise ValueError("no colour of the mask is a class colour or VOID_COLOR")
    blended = overlay(image, mask, alpha)
    width = max(blended.shape[1], MIN_LEGEND_WIDTH)
    strip = legend_strip(*legend_entries(ids, void, names, colors), width,
                         fontsize=float(np.clip(width / 80, 10, 22)))
    return _stack(blended, strip)


# --- prediction grid -------------------------------------------------------------------

GRID_TITLES = ("image", "truth", "prediction")
PANEL_WIDTH = 3.0
"""Width in inches of a grid column; a panel fills it unless that makes it too tall."""
PANEL_MAX_HEIGHT = 3.6
"""Tallest panel in inches: tall images are scaled down to it, keeping their aspect."""


def panel_size(height: int, width: int, box_width: float = PANEL_WIDTH,
               max_height: float = PANEL_MAX_HEIGHT) -> tuple[float, float]:
    """(width, height) in inches of a panel showing a ``height`` x ``width`` picture at its
    own aspect ratio: ``box_width`` wide, or ``max_height`` tall where that is smaller."""
    aspect = height / width
    if box_width * aspect <= max_height:
        return box_width, box_width * aspect
    return max_height / aspect, max_height


def _examples(images: Sequence[np.ndarray], labels: Sequence[np.ndarray],
              predictions: Sequence[np.ndarray]) -> list[tuple[np.ndarray, ...]]:
    """(image, label, prediction) arrays per example, checked to share (H, W)."""
    if not len(images) == len(labels) == len(predictions):
        raise ValueError(f"{len(images)} images, {len(labels)} labels and {len(predictions)}"
                         " predictions: give one of each per example")
    if len(labels) == 0:
        raise ValueError("no examples to draw")
    examples = []
    for i, example in enumerate(zip(images, labels, predictions)):
        image, label, prediction = map(np.asarray, example)
        if image.ndim != 3 or not image.shape[:2] == label.shape == prediction.shape:
            raise ValueError(f"example {i}: image {image.shape}, label {label.shape} and "
                             f"prediction {prediction.shape} must share (H, W)")
        examples.append((image, label, prediction))
    return examples


def comparison_grid(images: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                    predictions: Sequence[np.ndarray], num_classes: int, *,
                    bgr: bool = False, colors: np.ndarray | None = None,
                    names: Sequence[str] | None = None) -> np.ndarray:
    """uint8 (H, W, 3) picture: one row per example, columns "image", "truth",
    "prediction", each panel at its example's aspect ratio (large ones scaled down), its
    size on the left, and a legend of the classes (and void) that occur below.

    images: float (H_i, W_i, C) normalised images (BGR if ``bgr``); labels, predictions:
    int (H_i, W_i) class ids (255 void). Lists with a size per example, or stacked
    (N, H, W, ...) arrays. colors: uint8 (num_classes, 3), default ``palette``; names:
    class names by id, default "class <i>".
    """
    examples = _examples(images, labels, predictions)
    colors = palette(num_classes) if colors is None else np.asarray(colors, np.uint8)
    names = list(names) if names is not None else class_names("", num_classes)
    left, right, top, bottom, gap = 1.0, 0.15, 0.4, 0.1, 0.12
    sizes = [panel_size(*label.shape) for _, label, _ in examples]
    rows = [max(h, 0.3) for _, h in sizes]
    width = left + 3 * PANEL_WIDTH + 2 * gap + right
    height = top + sum(rows) + gap * (len(rows) - 1) + bottom
    figure = _figure(width, height)
    for j, title in enumerate(GRID_TITLES):
        figure.text((left + j * (PANEL_WIDTH + gap) + PANEL_WIDTH / 2) / width,
                    1 - top / 2 / height, title, ha="center", va="center", fontsize=13)
    y = top
    for (image, label, prediction), (w, h), row in zip(examples, sizes, rows):
        panels = (to_uint8(image, bgr), colorize(label, num_classes, colors),
                  colorize(prediction, num_classes, colors))
        for j, panel in enumerate(panels):
            x = left + j * (PANEL_WIDTH + gap) + (PANEL_WIDTH - w) / 2
            axes = figure.add_axes(((x / width, 1 - (y + (row + h) / 2) / height,
                                     w / width, h / height)))
            axes.imshow(panel, aspect="auto",
                        interpolation="antialiased" if j == 0 else "nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            for spine in axes.spines.values():
                spine.set_edgecolor("0.7")
        figure.text((left - 0.1) / width, 1 - (y + row / 2) / height,
                    f"{label.shape[0]}×{label.shape[1]}", ha="right", va="center",
                    fontsize=10, color="0.3")
        y += row + gap
    ids, void = classes_present([e[k] for e in examples for k in (1, 2)], num_classes)
    grid = _render(figure)
    return _stack(grid, legend_strip(*legend_entries(ids, void, names, colors),
                                     grid.shape[1], fontsize=11))


# --- learning curves -------------------------------------------------------------------

SCORE_CURVES: Mapping[str, tuple[tuple[str, str], ...]] = {
    "train": (("pixel_acc", "pixel acc."), ("mean_iu", "mean IU")),
    "eval": (("pixel_acc", "pixel acc."), ("mean_acc", "mean acc."), ("mean_iu", "mean IU"),
             ("fw_iu", "f.w. IU"), ("mean_dice", "mean Dice")),
}
"""Scores drawn per mode: (metrics.jsonl key, legend name)."""

METRIC_COLORS = {"pixel_acc": "tab:blue", "mean_acc": "tab:orange", "mean_iu": "tab:red",
                 "fw_iu": "tab:green", "mean_dice": "tab:purple"}
LOSS_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")
SPLIT_STYLES = ("-", "-.", ":")


def curve_points(records: Sequence[Mapping[str, Any]], mode: str,
                 key: str) -> dict[str, tuple[list[int], list[float]]]:
    """Steps and values of ``key`` in the records of ``mode``, grouped by "train" or by
    each eval split (in order of appearance; an evaluation of the training split, as ISBI's
    held-out ids of it, is "eval train", apart from the training steps' own records); null
    and non-finite values are left out."""
    groups: dict[str, tuple[list[int], list[float]]] = {}
    for record in records:
        if record.get("mode") != mode:
            continue
        split = str(record.get("split") or "eval")
        group = "train" if mode == "train" else ("eval train" if split == "train" else split)
        steps, values = groups.setdefault(group, ([], []))
        value = record.get(key)
        if isinstance(value, (int, float)) and np.isfinite(value):
            steps.append(int(record["step"]))
            values.append(float(value))
    return {group: points for group, points in groups.items() if points[0]}


def _curve(axes: Any, points: tuple[list[int], list[float]], label: str, color: str,
           evaluated: bool, linestyle: str = "-", scale: float = 1.0) -> None:
    """One series: eval ones solid with markers, train ones thin and dashed."""
    steps, values = points
    marker = "o" if evaluated or len(steps) == 1 else None
    axes.plot(steps, [scale * v for v in values], label=label, color=color, marker=marker,
              markersize=4, linestyle=linestyle if evaluated else "--",
              linewidth=1.8 if evaluated else 1.1, alpha=1.0 if evaluated else 0.75)


def _finish_panel(axes: Any, title: str, ylabel: str) -> None:
    """Title, labels, integer step ticks (a step either side of a lone step), grid, and a
    legend beside the panel."""
    from matplotlib.ticker import MaxNLocator

    axes.set_title(title, fontsize=12)
    axes.set_xlabel("step")
    axes.set_ylabel(ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    steps = [x for line in axes.get_lines() for x in line.get_xdata()]
    if steps and max(steps) - min(steps) < 2:
        axes.set_xlim(min(steps) - 1, max(steps) + 1)
    axes.grid(True, alpha=0.35)
    if axes.get_lines():
        axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                    fontsize=9, frameon=False)
    else:
        axes.text(0.5, 0.5, "no values yet", ha="center", va="center", color="0.4",
                  transform=axes.transAxes)


def learning_curves(records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """uint8 (H, W, 3) picture of metrics.jsonl records: loss (train and each eval split)
    against step beside the scores in %: train pixel acc. and mean IU, eval pixel acc.,
    mean acc., mean IU, f.w. IU and mean Dice. Eval series are solid with markers, train
    ones dashed; legends sit beside the panels."""
    figure = _figure(13, 4.4, layout="constrained")
    loss_axes, score_axes = figure.subplots(1, 2)
    losses = [(group, points, mode == "eval") for mode in ("train", "eval")
              for group, points in curve_points(records, mode, "loss").items()]
    for i, (group, points, evaluated) in enumerate(losses):
        _curve(loss_axes, points, f"{group} loss", LOSS_COLORS[i % len(LOSS_COLORS)],
               evaluated=evaluated)
    for mode, curves in SCORE_CURVES.items():
        for key, name in curves:
            for i, (group, points) in enumerate(curve_points(records, mode, key).items()):
                _curve(score_axes, points, f"{group} {name}", METRIC_COLORS[key],
                       evaluated=mode == "eval", scale=100.0,
                       linestyle=SPLIT_STYLES[i % len(SPLIT_STYLES)])
    _finish_panel(loss_axes, "loss", "cross-entropy per labelled pixel")
    _finish_panel(score_axes, "scores", "score (%)")
    return _render(figure)


# --- per-class scores ------------------------------------------------------------------

def class_iou_chart(class_iu: Sequence[float | None], names: Sequence[str],
                    colors: np.ndarray | None = None) -> np.ndarray:
    """uint8 (H, W, 3) horizontal bars of per-class IoU in %, one row per class, with the
    mean over the defined classes as a dashed line. None or NaN (a class neither in the
    labels nor predicted) shows as "- (absent)" without a bar.

    colors: uint8 (C, 3) bar colours by class id; default one blue.
    """
    if len(class_iu) != len(names):
        raise ValueError(f"{len(class_iu)} IoU values but {len(names)} class names")
    values = [100 * float(v) if v is not None and np.isfinite(v) else None for v in class_iu]
    defined = [v for v in values if v is not None]
    count = len(values)
    figure = _figure(8, max(2.6, 1.3 + 0.27 * count), layout="constrained")
    axes = figure.subplots()
    bar_colors = ("tab:blue" if colors is None
                  else np.asarray(colors, np.float64)[:count] / 255)
    axes.barh(np.arange(count), [v or 0.0 for v in values], height=0.72, color=bar_colors,
              edgecolor="0.3", linewidth=0.6)
    for i, v in enumerate(values):
        axes.text(1.0 if v is None else v + 1.0, i, "- (absent)" if v is None else f"{v:.1f}",
                  va="center", fontsize=9, color="0.45" if v is None else "black", zorder=3,
                  bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6, "alpha": 0.85})
    title = "per-class IoU"
    if defined:
        mean = float(np.mean(defined))
        axes.axvline(mean, color="0.25", linestyle="--", linewidth=1.2)
        title += f" (mean IU {mean:.1f}% over {len(defined)} of {count} classes)"
    axes.set_title(title, fontsize=12)
    axes.set_yticks(np.arange(count), list(names), fontsize=10 if count <= 24 else 8.5)
    axes.set_ylim(count - 0.4, -0.6)
    axes.set_xlim(0, 112)
    axes.set_xticks(range(0, 101, 20))
    axes.set_xlabel("IoU (%)")
    axes.grid(True, axis="x", alpha=0.35)
    axes.set_axisbelow(True)
    return _render(figure)


ANNOTATE_CLASSES = 12
"""Confusion heatmaps of at most this many classes print the % in each cell."""


def row_normalized(confusion: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """float (C, C) fractions of each row (true class) of a confusion matrix; a row with
    no pixels is all NaN."""
    confusion = np.asarray(confusion, np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"a confusion matrix is (C, C), not {confusion.shape}")
    totals = confusion.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, confusion / totals, np.nan)


def confusion_heatmap(confusion: Sequence[Sequence[int]] | np.ndarray,
                      names: Sequence[str]) -> np.ndarray:
    """uint8 (H, W, 3) heatmap of a confusion matrix (rows truth, columns prediction),
    each row normalised to % of that class's pixels; rows with no pixels stay blank (grey,
    "no pixels of this class").
    Cells print their % when there are at most ANNOTATE_CLASSES classes."""
    from matplotlib import colormaps

    rates = 100 * row_normalized(confusion)
    count = len(rates)
    if len(names) != count:
        raise ValueError(f"a {count}x{count} confusion matrix but {len(names)} class names")
    cell = float(np.clip(6.0 / count, 0.22, 1.0))
    room = 0.6 + 0.075 * max(map(len, names))  # inches for the longest tick label
    figure = _figure(count * cell + room + 1.7, count * cell + room + 0.9, layout="constrained")
    axes = figure.subplots()
    shown = axes.imshow(rates, cmap=colormaps["Blues"].with_extremes(bad="0.88"), vmin=0,
                        vmax=100, interpolation="nearest")
    fontsize = 10 if count <= ANNOTATE_CLASSES else 8
    for i in np.flatnonzero(np.isnan(rates[:, 0])):
        axes.text((count - 1) / 2, i, "no pixels of this class", ha="center", va="center",
                  fontsize=fontsize, color="0.35")
    axes.set_xticks(np.arange(count), list(names), fontsize=fontsize,
                    rotation=90 if count > ANNOTATE_CLASSES else 40,
                    ha="center" if count > ANNOTATE_CLASSES else "right",
                    rotation_mode="default" if count > ANNOTATE_CLASSES else "anchor")
    axes.set_yticks(np.arange(count), list(names), fontsize=fontsize)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title("confusion (% of each true class's pixels)", fontsize=12)
    if count <= ANNOTATE_CLASSES:
        for (i, j), v in np.ndenumerate(rates):
            if np.isfinite(v):
                axes.text(j, i, f"{v:.1f}", ha="center", va="center",
                          fontsize=min(12.0, cell * 72 / 4), color="white" if v > 60 else "black")
    figure.colorbar(shown, ax=axes, shrink=0.85, label="% of the true class's pixels")
    return _render(figure)
