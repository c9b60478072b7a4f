"""What a run shows: the paper's table, metrics.jsonl records, TensorBoard, learning curves
(fcnjax.run.reporting)."""

import json
import os

import numpy as np

from fcnjax.run import reporting, visualize


def result():
    return {"step": 40, "split": "val", "loss": 0.5, "pixel_acc": 0.9031, "mean_acc": 0.759,
            "mean_iu": 0.627, "fw_iu": 0.832, "mean_dice": 0.7,
            "class_iu": [0.9, 0.354, None], "class_dice": [0.947, 0.523, None]}


def test_paper_table_prints_the_four_metrics_and_per_class_rows_in_percent():
    table = reporting.paper_table(result(), ["background", "cat", "never seen"]).splitlines()
    assert table[0].split() == ["pixel", "acc.", "mean", "acc.", "mean", "IU", "f.w.", "IU"]
    assert table[1].split() == ["90.3", "75.9", "62.7", "83.2"]
    assert table[3].split() == ["class", "IoU", "Dice"]
    assert table[4].split() == ["background", "90.0", "94.7"]
    assert table[5].split() == ["cat", "35.4", "52.3"]
    assert table[6].split() == ["never", "seen", "-", "-"]


def test_reporter_writes_json_lines_with_null_for_nan_and_tensorboard_events(tmp_path):
    with reporting.Reporter(str(tmp_path)) as reporter:
        reporter.write({"step": 1, "mode": "train", "loss": 0.7, "mean_iu": float("nan"),
                        "pixel_acc": np.float32(0.5)})
        reporter.write({"mode": "eval", **result()})
        path = reporter.learning_curve()
    records = reporting.read_metrics(str(tmp_path))
    assert records[0] == {"step": 1, "mode": "train", "loss": 0.7, "mean_iu": None,
                          "pixel_acc": 0.5}
    assert records[1]["class_iu"] == [0.9, 0.354, None]
    with open(tmp_path / "metrics.jsonl") as f:
        assert all(json.loads(line) for line in f)
    events = os.listdir(tmp_path / "tensorboard")
    assert len(events) == 1 and os.path.getsize(tmp_path / "tensorboard" / events[0]) > 0
    assert os.path.basename(path) == "learning_curve.png"


def test_overlay_blends_image_and_mask():
    image = np.full((2, 2, 3), 200, np.uint8)
    mask = np.zeros((2, 2, 3), np.uint8)
    np.testing.assert_array_equal(visualize.overlay(image, mask), np.full((2, 2, 3), 100))


def test_a_resume_keeps_one_record_per_step_mode_and_split(tmp_path):
    """The history after kills and reruns: records past the resumed checkpoint (6) and
    duplicates (eval at 3, 3, 6, 6) go, the last copy stays; a torn last line is ignored."""
    lines = [{"step": s, "mode": m, "split": "val" if m == "eval" else None, "loss": s + i}
             for i, (s, m) in enumerate([(3, "train"), (3, "eval"), (3, "eval"), (6, "train"),
                                         (6, "eval"), (7, "train"), (6, "eval"), (9, "eval")])]
    with open(tmp_path / "metrics.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in lines)
        f.write('{"step": 10, "mode": "tr')  # the process died mid-write
    assert len(reporting.read_metrics(str(tmp_path))) == 8
    assert reporting.truncate_metrics(str(tmp_path), 6) == 4
    kept = reporting.read_metrics(str(tmp_path))
    assert [(r["step"], r["mode"], r["loss"]) for r in kept] == [
        (3, "train", 3), (3, "eval", 5), (6, "train", 9), (6, "eval", 12)]
    assert reporting.truncate_metrics(str(tmp_path), 6) == 0
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "mo')
    assert reporting.truncate_metrics(str(tmp_path), 6) == 0  # the torn line goes, all else stays
    assert reporting.read_metrics(str(tmp_path)) == kept
    assert open(tmp_path / "metrics.jsonl").read().endswith("\n")
