"""What a run shows: metrics.jsonl, TensorBoard events, learning curves, tables, prediction grids.

Everything lands in the workdir:

- ``metrics.jsonl``: one JSON object per train log or evaluation (one per step, mode and
  split: a resumed run first drops the records past its checkpoint), keys ``step``, ``mode``
  ("train" or "eval"), ``loss`` (mean cross-entropy per labelled pixel), ``pixel_acc``,
  ``mean_acc``, ``mean_iu``, ``fw_iu``, ``mean_dice``; eval records add ``split``,
  ``class_iu`` and ``class_dice`` (lists by class id, null where undefined), train records
  ``objective`` (the minimised loss, sum or mean), ``window_steps`` (the steps averaged),
  ``steps_per_second`` and ``images_per_second``.
- ``tensorboard/``: event files with every scalar as ``<mode>/<key>`` and the prediction grids.
- ``learning_curve.png``: loss and scores against step; ``predictions_<step>.png``: grids
  (image | truth | prediction per example, with a class-colour legend).

``fcnjax.evaluate`` adds ``eval_<split>_<step>_class_iou.png`` and ``..._confusion.png``
(:func:`write_class_pictures`) beside its JSON.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from fcnjax import metrics
from fcnjax.data.classes import class_colors, class_names
from fcnjax.run import visualize
from fcnjax.run.workdir import write_atomic

METRICS_FILE = "metrics.jsonl"
PAPER_COLUMNS = (("pixel acc.", "pixel_acc"), ("mean acc.", "mean_acc"),
                 ("mean IU", "mean_iu"), ("f.w. IU", "fw_iu"))


def clean(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become None (null), numpy scalars Python numbers."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


class Reporter:
    """Appends records to ``<workdir>/metrics.jsonl`` and TensorBoard; draws the curve.

    Use as a context manager (or call ``close``) so the event file is flushed.
    """

    def __init__(self, workdir: str, tensorboard: bool = True):
        self.workdir = workdir
        self.writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter  # pulls in protobuf: only when training
            self.writer = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` (needs ``step`` and ``mode``) as one JSON line and as scalars."""
        with open(os.path.join(self.workdir, METRICS_FILE), "a") as f:
            f.write(json.dumps(clean(dict(record))) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.writer.add_scalar(f"{record['mode']}/{key}", value, record["step"])

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """Add a uint8 (H, W, 3) image to the TensorBoard events."""
        if self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def learning_curve(self) -> str:
        """Draw ``learning_curve.png`` from everything in metrics.jsonl; return its path."""
        path = os.path.join(self.workdir, "learning_curve.png")
        Image.fromarray(visualize.learning_curves(read_metrics(self.workdir))).save(path)
        return path

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> "Reporter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """Every record of ``<workdir>/metrics.jsonl`` (an empty list if there is none); a last
    line cut short by a crash is left out."""
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise ValueError(f"{path}: line {number} is not JSON") from None
    return records


def record_key(record: Mapping[str, Any]) -> tuple:
    """What makes a record unique in a run's history: (step, mode, split)."""
    return record.get("step"), record.get("mode"), record.get("split")


def torn_tail(path: str) -> bool:
    """Whether the file at ``path`` ends in a line without its newline (a write cut short)."""
    if not os.path.exists(path) or not os.path.getsize(path):
        return False
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def truncate_metrics(workdir: str, step: int) -> int:
    """Rewrite ``metrics.jsonl`` as the history of a run resumed at ``step``: records of
    later steps (written after the checkpoint a resume starts from, and written again by
    it) and duplicates of a (step, mode, split) are dropped, the last one kept. Atomic;
    returns the number of records dropped."""
    records, path = read_metrics(workdir), os.path.join(workdir, METRICS_FILE)
    torn = torn_tail(path)
    kept: dict[tuple, dict[str, Any]] = {}
    for record in records:
        if record.get("step", 0) <= step:
            kept.pop(record_key(record), None)
            kept[record_key(record)] = record
    dropped = len(records) - len(kept)
    if dropped or torn:
        ordered = sorted(kept.values(), key=lambda r: r.get("step", 0))
        write_atomic(path, "".join(json.dumps(r) + "\n" for r in ordered).encode())
    return dropped


def write_predictions(workdir: str, step: int, drawn: Mapping[str, Sequence[np.ndarray]],
                      num_classes: int, bgr: bool, classes: str | Sequence[str] = "voc"
                      ) -> np.ndarray:
    """Save image | truth | prediction rows as ``<workdir>/predictions_<step>.png``; return
    the uint8 grid.

    drawn: lists (or stacked arrays) of "image", "label" and "prediction", one per example,
    each at its own size (``objective.evaluate``); classes: the class set (a key of
    ``fcnjax.data.classes.CLASS_SETS``, or the names by id) giving colours and names.
    """
    grid = visualize.comparison_grid(drawn["image"], drawn["label"], drawn["prediction"],
                                     num_classes, bgr=bgr,
                                     colors=class_colors(classes, num_classes),
                                     names=class_names(classes, num_classes))
    Image.fromarray(grid).save(os.path.join(workdir, f"predictions_{step:06d}.png"))
    return grid


def write_class_pictures(stem: str, summary: Mapping[str, Any], classes: str | Sequence[str]
                         ) -> list[str]:
    """Save ``<stem>_class_iou.png`` (per-class IoU bars) and ``<stem>_confusion.png``
    (row-normalised confusion heatmap) of an evaluation summary with ``class_iu`` and
    ``confusion`` (rows truth); return their paths. classes: the class set (its key or
    its names by id)."""
    num_classes = len(summary["class_iu"])
    names = class_names(classes, num_classes)
    pictures = {
        "class_iou": visualize.class_iou_chart(
            summary["class_iu"], names, class_colors(classes, num_classes)),
        "confusion": visualize.confusion_heatmap(summary["confusion"], names)}
    paths = []
    for suffix, picture in pictures.items():
        paths.append(f"{stem}_{suffix}.png")
        Image.fromarray(picture).save(paths[-1])
    return paths


def format_scores(record: Mapping[str, Any]) -> str:
    """One line: "step 40 val: loss 0.41, pixel_acc 81.2, ..." (metrics in %, no lists)."""
    parts = [f"{k} {100 * v:.1f}" if k in metrics.METRICS else f"{k} {v:.4g}"
             for k, v in record.items()
             if k not in ("step", "mode", "split") and isinstance(v, (int, float))]
    return f"step {record['step']} {record.get('split', '')}: " + ", ".join(parts)


def _percent(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.1f}"


def paper_table(summary: Mapping[str, Any], names: Sequence[str]) -> str:
    """The paper's table (pixel acc., mean acc., mean IU, f.w. IU, in %) and per-class rows.

    summary: a record with the four metrics and ``class_iu`` / ``class_dice`` lists;
    names: class names by id. Undefined values (absent classes) print as "-".
    """
    head = "  ".join(f"{title:>10}" for title, _ in PAPER_COLUMNS)
    row = "  ".join(f"{_percent(summary[key]):>10}" for _, key in PAPER_COLUMNS)
    width = max([len("class"), *map(len, names)])
    lines = [head, row, "", f"{'class':<{width}}  {'IoU':>6}  {'Dice':>6}"]
    for name, iu, dice in zip(names, summary["class_iu"], summary["class_dice"]):
        lines.append(f"{name:<{width}}  {_percent(iu):>6}  {_percent(dice):>6}")
    return "\n".join(lines)
